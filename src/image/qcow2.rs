//! What a disk image file says about itself, read from its first bytes without opening anything
//! it names [pure; the one read is `DiskFile::read`].
//!
//! A qcow2 header can name other files: a backing file (read as the disk's lower layer) and an
//! external data file (where the guest's data lives). QEMU, `qemu-img` and libvirt follow those
//! names when they open the image, as whoever runs them: an image from someone else (a golden's
//! disk, an imported image) that names `/root/secret` hands that file to a guest. So every
//! image from outside is read here first, by our own parser that follows nothing, and refused
//! unless it names exactly what we expect.
//!
//! Other formats that can name files (vmdk extents, qed backing files, the old qcow v1) are
//! recognised by their magic and refused; anything else is raw, which names nothing.

use std::io::Read;
use std::path::Path;

/// The qcow2 magic, `QFI\xfb`.
const QCOW_MAGIC: [u8; 4] = *b"QFI\xfb";
/// Header extension types (docs/interop/qcow2.txt in QEMU).
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Incompatible feature bits QEMU 7.2 knows: dirty, corrupt, external data file, compression
/// type, extended L2 entries. An image with any other one is not one this QEMU can open.
const INCOMPAT_KNOWN: u64 = 0b1_1111;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// How much of the file is read: the header, its extensions and the backing file's name all sit
/// in the first cluster, and a header that puts them further is refused.
const HEAD_BYTES: usize = 64 * 1024;

/// The format of a disk image file, from its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskFile {
    Qcow2(Qcow2),
    /// A format that can name other files, which we do not take (its name).
    Other(&'static str),
    /// No known header: the bytes are the disk.
    Raw,
}

/// What a qcow2 header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2 {
    pub version: u32,
    /// The disk's size as the guest sees it, in bytes.
    pub virtual_size: u64,
    /// The backing file's name as written in the header (a path, or a protocol string).
    pub backing: Option<String>,
    /// The backing file's format, from the header extension.
    pub backing_format: Option<String>,
    /// The external data file's name (header extension), or `Some("")` when the feature bit says
    /// there is one but no name is given.
    pub data_file: Option<String>,
    pub encrypted: bool,
    pub corrupt: bool,
    /// Incompatible feature bits this parser (and QEMU 7.2) does not know.
    pub unknown_features: u64,
    /// Internal snapshots in the image.
    pub snapshots: u32,
}

/// Why an image is refused: a sentence that names what it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What an image from outside may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing<'a> {
    /// Self-contained: no backing file at all.
    None,
    /// Backed by the base image whose cache directory is `dir` (`debian-12-<key>`), file `file`,
    /// of `format`: the header's name must end in `<dir>/<file>`, whatever directory held the
    /// cache where it was made (the name is never followed: the domain names its backing file
    /// itself, and the disk is rebased onto this host's image).
    CacheImage {
        dir: &'a str,
        file: &'a str,
        format: &'a str,
    },
}

impl DiskFile {
    /// Reads the head of `path` (a regular file; anything else is refused).
    pub fn read(path: &Path) -> std::io::Result<DiskFile> {
        let md = std::fs::symlink_metadata(path)?;
        if !md.file_type().is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let mut head = Vec::with_capacity(HEAD_BYTES);
        std::fs::File::open(path)?
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)?;
        Ok(DiskFile::parse(&head))
    }

    /// The format `head` (the first bytes of a file) shows.
    pub fn parse(head: &[u8]) -> DiskFile {
        let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
        if at(0, &QCOW_MAGIC) {
            return match parse_qcow(head) {
                Some(q) if q.version >= 2 => DiskFile::Qcow2(q),
                Some(_) => DiskFile::Other("qcow (version 1)"),
                None => DiskFile::Other("qcow2 with a damaged header"),
            };
        }
        for (off, magic, name) in [
            (0, &b"KDMV"[..], "vmdk"),
            (0, &b"# Disk DescriptorFile"[..], "vmdk (descriptor)"),
            (0, &b"QED\0"[..], "qed"),
            (0, &b"vhdxfile"[..], "vhdx"),
            (0, &b"conectix"[..], "vpc"),
            (0x40, &[0x7f, 0x10, 0xda, 0xbe][..], "vdi"),
            (0, &b"WithoutFreeSpace"[..], "parallels"),
            (0, &b"WithouFreSpacExt"[..], "parallels"),
            (0, &b"LUKS\xba\xbe"[..], "luks"),
            (0, &b"Bochs Virtual HD Image"[..], "bochs"),
        ] {
            if at(off, magic) {
                return DiskFile::Other(name);
            }
        }
        DiskFile::Raw
    }

    /// The format's name as qemu-img's `-f` takes it (`qcow2`, `raw`).
    pub fn format(&self) -> &str {
        match self {
            DiskFile::Qcow2(_) => "qcow2",
            DiskFile::Other(name) => name,
            DiskFile::Raw => "raw",
        }
    }
}

impl Qcow2 {
    /// Refuses what QEMU would follow or could not open: a backing file other than `backing`
    /// allows, an external data file, encryption, a corrupt flag, features unknown here.
    pub fn check(&self, backing: Backing<'_>) -> Result<(), Refused> {
        if let Some(d) = &self.data_file {
            return Err(Refused(if d.is_empty() {
                "it keeps its data in an external data file".into()
            } else {
                format!("it keeps its data in an external data file, {d:?}")
            }));
        }
        if self.encrypted {
            return Err(Refused("it is encrypted".into()));
        }
        if self.corrupt {
            return Err(Refused("its header marks it corrupt".into()));
        }
        if self.unknown_features != 0 {
            return Err(Refused(format!(
                "it needs qcow2 features this QEMU does not know ({:#x})",
                self.unknown_features
            )));
        }
        match (backing, &self.backing) {
            (Backing::None, None) => Ok(()),
            (Backing::None, Some(b)) => Err(Refused(format!(
                "its header names a backing file, {b:?}; an image must be self-contained"
            ))),
            (Backing::CacheImage { dir, .. }, None) => Err(Refused(format!(
                "it has no backing file; it must be an overlay of image {dir}"
            ))),
            (Backing::CacheImage { dir, file, format }, Some(b)) => {
                let p = Path::new(b);
                let tail: Vec<_> = p.components().rev().take(2).collect();
                let expected = [Path::new(file).as_os_str(), Path::new(dir).as_os_str()];
                let names_it = p.is_absolute()
                    && !b.contains("/../")
                    && p.components()
                        .all(|c| !matches!(c, std::path::Component::ParentDir))
                    && tail.len() == 2
                    && tail.iter().zip(expected).all(|(c, e)| c.as_os_str() == e);
                let format_ok = self.backing_format.as_deref().is_none_or(|f| f == format);
                if names_it && format_ok {
                    Ok(())
                } else {
                    Err(Refused(format!(
                        "its header names the backing file {b:?}{}; it must be image {dir}'s {file} ({format})",
                        self.backing_format
                            .as_deref()
                            .map(|f| format!(" ({f})"))
                            .unwrap_or_default()
                    )))
                }
            }
        }
    }
}

/// The header of an empty qcow2 v3 image of `size` bytes backed by `backing` (its path and
/// format), as `qemu-img create` lays it out: what the fake hypervisor writes for a volume, so
/// that a golden's disks from the fast tests are read as real ones are.
pub fn bare_header(size: u64, backing: Option<(&str, &str)>) -> Vec<u8> {
    match backing {
        Some((path, format)) => header_with(
            size,
            Some(path),
            &[(EXT_BACKING_FORMAT, format.as_bytes())],
            0,
        ),
        None => header_with(size, None, &[], 0),
    }
}

/// A qcow2 v3 header: 104 bytes, the extensions, their end, then the backing file's name.
fn header_with(size: u64, backing: Option<&str>, exts: &[(u32, &[u8])], incompat: u64) -> Vec<u8> {
    let mut h = vec![0u8; 104];
    h[..4].copy_from_slice(&QCOW_MAGIC);
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&16u32.to_be_bytes());
    h[24..32].copy_from_slice(&size.to_be_bytes());
    h[72..80].copy_from_slice(&incompat.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes());
    h[100..104].copy_from_slice(&104u32.to_be_bytes());
    for (kind, data) in exts {
        h.extend_from_slice(&kind.to_be_bytes());
        h.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
        h.extend_from_slice(data);
        h.resize(h.len().div_ceil(8) * 8, 0);
    }
    h.extend_from_slice(&[0u8; 8]);
    if let Some(b) = backing {
        let off = h.len() as u64;
        h[8..16].copy_from_slice(&off.to_be_bytes());
        h[16..20].copy_from_slice(&u32::try_from(b.len()).unwrap_or(0).to_be_bytes());
        h.extend_from_slice(b.as_bytes());
    }
    h
}

/// Where a qcow2's snapshot table is: (number of snapshots, offset), from its first 72 bytes.
pub fn snapshot_table(head: &[u8]) -> Option<(u32, u64)> {
    if head.get(..4)? != QCOW_MAGIC || be32(head, 4)? < 2 {
        return None;
    }
    Some((be32(head, 60)?, be64(head, 64)?))
}

/// Bytes of saved memory of each internal snapshot, by name, from the snapshot table (`table`
/// starts at the table's offset and holds `count` entries; QEMU's docs/interop/qcow2.txt).
/// None when the table does not fit in `table` or is inconsistent.
pub fn snapshot_states(table: &[u8], count: u32) -> Option<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    for _ in 0..count {
        let e = table.get(off..)?;
        let id_len = usize::from(u16::from_be_bytes(e.get(12..14)?.try_into().ok()?));
        let name_len = usize::from(u16::from_be_bytes(e.get(14..16)?.try_into().ok()?));
        let small = u64::from(be32(e, 32)?);
        let extra = usize::try_from(be32(e, 36)?).ok()?;
        // The 64-bit size in the extra data, when there is one, is the size.
        let state = if extra >= 8 { be64(e, 40)? } else { small };
        let name_at = 40usize.checked_add(extra)?.checked_add(id_len)?;
        let name = e.get(name_at..name_at.checked_add(name_len)?)?;
        out.push((String::from_utf8_lossy(name).into_owned(), state));
        let len = name_at + name_len;
        off = off.checked_add(len.div_ceil(8) * 8)?;
    }
    Some(out)
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The header of a qcow (any version); None when it does not fit in `head` or is inconsistent.
fn parse_qcow(head: &[u8]) -> Option<Qcow2> {
    let version = be32(head, 4)?;
    if version < 2 {
        return Some(Qcow2 {
            version,
            virtual_size: 0,
            backing: None,
            backing_format: None,
            data_file: None,
            encrypted: false,
            corrupt: false,
            unknown_features: 0,
            snapshots: 0,
        });
    }
    let backing_offset = usize::try_from(be64(head, 8)?).ok()?;
    let backing_size = usize::try_from(be32(head, 16)?).ok()?;
    let virtual_size = be64(head, 24)?;
    let crypt = be32(head, 32)?;
    let snapshots = be32(head, 60)?;
    let (incompat, header_len) = if version >= 3 {
        (be64(head, 72)?, usize::try_from(be32(head, 100)?).ok()?)
    } else {
        (0, 72)
    };
    let backing = if backing_offset == 0 {
        None
    } else {
        // QEMU refuses names over 1023 bytes; one beyond what was read is refused here.
        if backing_size > 1023 {
            return None;
        }
        let bytes = head.get(backing_offset..backing_offset.checked_add(backing_size)?)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    // Header extensions: from the header's end, each type, length and data padded to 8 bytes.
    let (mut backing_format, mut data_file) = (None, None);
    let mut off = header_len;
    loop {
        let kind = be32(head, off)?;
        let len = usize::try_from(be32(head, off + 4)?).ok()?;
        if kind == EXT_END {
            break;
        }
        let data = head.get(off + 8..(off + 8).checked_add(len)?)?;
        let text = || {
            String::from_utf8_lossy(data)
                .trim_end_matches('\0')
                .to_string()
        };
        match kind {
            EXT_BACKING_FORMAT => backing_format = Some(text()),
            EXT_DATA_FILE => data_file = Some(text()),
            _ => {}
        }
        off = off + 8 + len.div_ceil(8) * 8;
    }
    if incompat & INCOMPAT_DATA_FILE != 0 && data_file.is_none() {
        data_file = Some(String::new());
    }
    Some(Qcow2 {
        version,
        virtual_size,
        backing,
        backing_format,
        data_file,
        encrypted: crypt != 0,
        corrupt: incompat & INCOMPAT_CORRUPT != 0,
        unknown_features: incompat & !INCOMPAT_KNOWN,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    /// Two entries as QEMU writes them: one with the 64-bit memory size in its extra data
    /// (QEMU >= 1.x), one with only the old 32-bit field; names after their ids, padded to 8.
    #[test]
    fn snapshot_table_gives_each_snapshot_its_memory_size() {
        fn entry(id: &str, name: &str, small: u32, large: Option<u64>) -> Vec<u8> {
            let mut e = vec![0u8; 40];
            e[12..14].copy_from_slice(&u16::try_from(id.len()).expect("id").to_be_bytes());
            e[14..16].copy_from_slice(&u16::try_from(name.len()).expect("name").to_be_bytes());
            e[32..36].copy_from_slice(&small.to_be_bytes());
            let extra: Vec<u8> = large
                .map(|l| {
                    let mut x = l.to_be_bytes().to_vec();
                    x.extend_from_slice(&[0u8; 16]);
                    x
                })
                .unwrap_or_default();
            e[36..40].copy_from_slice(&u32::try_from(extra.len()).expect("extra").to_be_bytes());
            e.extend(extra);
            e.extend(id.as_bytes());
            e.extend(name.as_bytes());
            while !e.len().is_multiple_of(8) {
                e.push(0);
            }
            e
        }
        let mut table = entry("1", "golden", 7, Some(5 << 32));
        table.extend(entry("2", "disk-only", 0, None));
        assert_eq!(
            snapshot_states(&table, 2),
            Some(vec![("golden".into(), 5 << 32), ("disk-only".into(), 0)])
        );
        assert_eq!(snapshot_states(&table[..50], 2), None, "cut short");
        let mut head = bare_header(1 << 20, None);
        head[60..64].copy_from_slice(&2u32.to_be_bytes());
        head[64..72].copy_from_slice(&65536u64.to_be_bytes());
        assert_eq!(snapshot_table(&head), Some((2, 65536)));
        assert_eq!(
            snapshot_table(b"not a qcow2 image at all, not at all, no, not one bit of it....."),
            None
        );
    }

    use super::*;

    fn header(size: u64, backing: Option<&str>, exts: &[(u32, &[u8])], incompat: u64) -> Vec<u8> {
        header_with(size, backing, exts, incompat)
    }

    fn qcow(h: &[u8]) -> Qcow2 {
        match DiskFile::parse(h) {
            DiskFile::Qcow2(q) => q,
            other => panic!("not qcow2: {other:?}"),
        }
    }

    const CACHE: Backing<'static> = Backing::CacheImage {
        dir: "debian-12-0123456789ab",
        file: "disk.qcow2",
        format: "qcow2",
    };

    #[test]
    fn an_overlay_of_the_cache_image_passes_wherever_the_cache_was() {
        for path in [
            "/var/cache/dcos-lab/images/debian-12-0123456789ab/disk.qcow2",
            "/home/ci/.cache/dcos-lab/images/debian-12-0123456789ab/disk.qcow2",
        ] {
            let q = qcow(&header(
                10 << 30,
                Some(path),
                &[(EXT_BACKING_FORMAT, b"qcow2")],
                0,
            ));
            assert_eq!(q.backing.as_deref(), Some(path));
            assert_eq!(q.backing_format.as_deref(), Some("qcow2"));
            assert_eq!(q.virtual_size, 10 << 30);
            assert_eq!(q.check(CACHE), Ok(()));
            assert!(q.check(Backing::None).is_err(), "not self-contained");
        }
        let alone = qcow(&header(1 << 30, None, &[], 0));
        assert_eq!(alone.check(Backing::None), Ok(()));
        assert!(
            alone
                .check(CACHE)
                .is_err_and(|e| e.0.contains("no backing file"))
        );
    }

    #[test]
    fn a_backing_file_elsewhere_is_refused_naming_it() {
        for (path, fmt) in [
            ("/var/tmp/FILE", "raw"),
            ("/var/tmp/FILE", "qcow2"),
            ("/root/debian-12-0123456789ab/disk.qcow2x", "qcow2"),
            ("debian-12-0123456789ab/disk.qcow2", "qcow2"),
            (
                "/x/debian-12-0123456789ab/../../etc/debian-12-0123456789ab/disk.qcow2",
                "qcow2",
            ),
            (
                "/var/cache/dcos-lab/images/debian-12-0123456789ab/disk.qcow2",
                "raw",
            ),
            ("json:{\"file.filename\":\"/etc/shadow\"}", "raw"),
            ("nbd://evil/x", "raw"),
        ] {
            let q = qcow(&header(
                1 << 30,
                Some(path),
                &[(EXT_BACKING_FORMAT, fmt.as_bytes())],
                0,
            ));
            let err = q.check(CACHE).expect_err(path);
            assert!(err.0.contains(&format!("{path:?}")), "{err}");
        }
    }

    #[test]
    fn a_data_file_encryption_and_unknown_features_are_refused() {
        let q = qcow(&header(
            1 << 30,
            None,
            &[(EXT_DATA_FILE, b"/root/secret")],
            INCOMPAT_DATA_FILE,
        ));
        assert_eq!(q.data_file.as_deref(), Some("/root/secret"));
        assert!(
            q.check(Backing::None)
                .is_err_and(|e| e.0.contains("/root/secret"))
        );
        // The bit alone: QEMU would ask for the data file by option.
        let q = qcow(&header(1 << 30, None, &[], INCOMPAT_DATA_FILE));
        assert!(
            q.check(Backing::None)
                .is_err_and(|e| e.0.contains("external data file"))
        );
        let q = qcow(&header(1 << 30, None, &[], 1 << 9));
        assert!(q.check(Backing::None).is_err_and(|e| e.0.contains("0x200")));
        let mut enc = header(1 << 30, None, &[], 0);
        enc[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert!(
            qcow(&enc)
                .check(Backing::None)
                .is_err_and(|e| e.0.contains("encrypted"))
        );
    }

    #[test]
    fn formats_that_can_name_files_are_told_from_raw() {
        assert_eq!(
            DiskFile::parse(b"# Disk DescriptorFile\nRW 8 FLAT \"/etc/shadow\" 0\n"),
            DiskFile::Other("vmdk (descriptor)")
        );
        assert_eq!(DiskFile::parse(b"QED\0rest"), DiskFile::Other("qed"));
        let mut v1 = header(1, None, &[], 0);
        v1[4..8].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(DiskFile::parse(&v1), DiskFile::Other("qcow (version 1)"));
        assert_eq!(DiskFile::parse(&[0u8; 512]), DiskFile::Raw);
        assert_eq!(DiskFile::parse(b""), DiskFile::Raw);
        // A header cut short of its own extensions is not taken as a good one.
        let h = header(1, Some("/var/tmp/x"), &[], 0);
        assert_eq!(
            DiskFile::parse(&h[..60]),
            DiskFile::Other("qcow2 with a damaged header")
        );
    }

    /// Our parser reads what qemu-img writes: the same backing name, format and size.
    #[test]
    fn it_reads_what_qemu_img_writes() {
        let dir = tempfile::tempdir().expect("dir");
        let base = dir.path().join("base.qcow2");
        let over = dir.path().join("over.qcow2");
        let run = |args: &[&std::ffi::OsStr]| {
            let st = std::process::Command::new("qemu-img")
                .args(args)
                .status()
                .expect("qemu-img runs (scripts/test.sh installs it)");
            assert!(st.success(), "{args:?}");
        };
        run(&[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            base.as_os_str(),
            "1G".as_ref(),
        ]);
        run(&[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-F".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            base.as_os_str(),
            over.as_os_str(),
            "3G".as_ref(),
        ]);
        let DiskFile::Qcow2(b) = DiskFile::read(&base).expect("read") else {
            panic!("base is qcow2");
        };
        assert_eq!((b.virtual_size, b.backing.clone()), (1 << 30, None));
        let DiskFile::Qcow2(o) = DiskFile::read(&over).expect("read") else {
            panic!("overlay is qcow2");
        };
        assert_eq!(o.virtual_size, 3 << 30);
        assert_eq!(o.backing.as_deref(), base.to_str());
        assert_eq!(o.backing_format.as_deref(), Some("qcow2"));
        let data = dir.path().join("data.qcow2");
        run(&[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-o".as_ref(),
            format!("data_file={}", dir.path().join("data.raw").display()).as_ref(),
            data.as_os_str(),
            "1G".as_ref(),
        ]);
        let DiskFile::Qcow2(d) = DiskFile::read(&data).expect("read") else {
            panic!("qcow2");
        };
        assert!(
            d.check(Backing::None)
                .is_err_and(|e| e.0.contains("data.raw"))
        );
        assert!(DiskFile::read(dir.path()).is_err(), "a directory");
    }
}
