//! A tar stream written in one pass, each member hashed as it is written [I/O: files].
//!
//! Each member is read once: hashed and written in the same pass (a golden lab's disks are
//! hundreds of MB). The first member (the manifest, which holds the hashes) is a placeholder of
//! a reserved size, written over when every other member is in: JSON allows the trailing spaces
//! that fill it.
//!
//! The format is POSIX ustar, which GNU tar and every other tar reads; a file with holes (an
//! overlay copy whose other snapshots were deleted has them) is a GNU "old" sparse member (type
//! `S`: the map of its data in the header, only the data stored), which GNU tar and libarchive
//! read; a number past ustar's octal fields is written in GNU's base-256 form.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

const BLOCK: usize = 512;
/// How much of a member is read and written at a time, and the zeros a hole is hashed from:
/// small enough to keep dcos-lab's own memory small (the page cache does the rest).
const CHUNK: usize = 1 << 20;
const ZEROS: usize = 256 << 10;

/// A tar file being written.
#[derive(Debug)]
pub struct Writer {
    out: BufWriter<File>,
    /// Where the placeholder's data starts, and its size.
    first_at: u64,
    reserve: usize,
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what)
}

/// Writes `v` as a NUL-terminated octal number filling `field`, or (a size too large for it) in
/// GNU tar's base-256 form.
fn numeric(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    if v < 8u64.pow(digits as u32) {
        let s = format!("{v:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let n = field.len();
        field[n - 8..].copy_from_slice(&v.to_be_bytes());
        field[0] = 0x80;
    }
}

/// A header for a regular file: ustar, or, with a sparse map, GNU's old sparse member (the map's
/// first four entries in the header, the rest in extension blocks that follow it).
fn header(
    name: &str,
    mode: u32,
    size: u64,
    mtime: u64,
    sparse: Option<(&[(u64, u64)], u64)>,
) -> std::io::Result<Vec<u8>> {
    if name.len() > 100 || name.is_empty() {
        return Err(invalid(format!(
            "tar member name {name:?} is empty or longer than 100 bytes"
        )));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    numeric(&mut h[100..108], u64::from(mode & 0o7777));
    numeric(&mut h[108..116], 0); // uid
    numeric(&mut h[116..124], 0); // gid
    numeric(&mut h[124..136], size);
    numeric(&mut h[136..148], mtime);
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    let mut ext: Vec<[u8; BLOCK]> = Vec::new();
    match sparse {
        None => {
            h[156] = b'0'; // a regular file
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
        }
        Some((map, real)) => {
            h[156] = b'S';
            h[257..265].copy_from_slice(b"ustar  \0");
            let entry = |b: &mut [u8], (off, len): (u64, u64)| {
                numeric(&mut b[..12], off);
                numeric(&mut b[12..24], len);
            };
            for (i, e) in map.iter().take(4).enumerate() {
                entry(&mut h[386 + 24 * i..410 + 24 * i], *e);
            }
            numeric(&mut h[483..495], real);
            let rest: Vec<&[(u64, u64)]> = map.get(4..).unwrap_or(&[]).chunks(21).collect();
            h[482] = u8::from(!rest.is_empty());
            for (k, chunk) in rest.iter().enumerate() {
                let mut b = [0u8; BLOCK];
                for (i, e) in chunk.iter().enumerate() {
                    entry(&mut b[24 * i..24 * i + 24], *e);
                }
                b[504] = u8::from(k + 1 < rest.len());
                ext.push(b);
            }
        }
    }
    // The checksum: the header's bytes summed with the checksum field as spaces.
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}");
    h[148..154].copy_from_slice(s.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    let mut out = h.to_vec();
    for b in ext {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// The data ranges of an open file (SEEK_DATA/SEEK_HOLE), as (offset, length).
pub(super) fn data_map(f: &File, len: u64) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let end = i64::try_from(len).unwrap_or(i64::MAX);
    let mut map = Vec::new();
    let mut pos: i64 = 0;
    while pos < end {
        // SAFETY: lseek on a descriptor the caller keeps open.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: only a hole after pos
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        if hole <= data {
            break;
        }
        map.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    map
}

/// Zeros to hash a hole from (in the binary's zeroed data, not allocated per member).
static ZERO_BYTES: [u8; ZEROS] = [0; ZEROS];

/// Feeds `n` zero bytes (a hole, as a reader sees it) to `h`.
fn hash_zeros(h: &mut Sha256, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS as u64);
        h.update(&ZERO_BYTES[..k as usize]);
        n -= k;
    }
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

impl Writer {
    /// Creates `path` with a first member `first` of `reserve` bytes, to be written by `finish`.
    pub fn create(path: &Path, first: &str, reserve: usize, mtime: u64) -> std::io::Result<Writer> {
        let mut out = BufWriter::with_capacity(ZEROS, File::create(path)?);
        out.write_all(&header(first, 0o644, reserve as u64, mtime, None)?)?;
        out.write_all(&vec![b' '; reserve])?;
        out.write_all(&vec![0u8; padding(reserve as u64)])?;
        Ok(Writer {
            out,
            first_at: BLOCK as u64,
            reserve,
        })
    }

    /// Appends the file `src` as member `name` (holes kept: only its data is stored); returns
    /// the SHA-256 (hex) of its whole content, holes read as zeros, and its size. The file must
    /// not change meanwhile (a size that differs from what it had is an error).
    pub fn append_file(&mut self, name: &str, src: &Path) -> std::io::Result<(String, u64)> {
        let mut f = File::open(src)?;
        let md = f.metadata()?;
        let size = md.len();
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions());
        let mut map = data_map(&f, size);
        let dense = map == [(0, size)] || size == 0;
        if dense {
            map = vec![(0, size)];
            self.out
                .write_all(&header(name, mode, size, mtime, None)?)?;
        } else {
            // GNU tar takes the file's length from an entry at its end when it ends in a hole.
            if map.last().is_none_or(|(o, l)| o + l < size) {
                map.push((size, 0));
            }
            let stored: u64 = map.iter().map(|(_, l)| l).sum();
            self.out
                .write_all(&header(name, mode, stored, mtime, Some((&map, size)))?)?;
        }
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let (mut at, mut stored) = (0u64, 0u64);
        for (off, len) in &map {
            // The hole before this range, as the reader will see it.
            hash_zeros(&mut h, off.saturating_sub(at));
            f.seek(SeekFrom::Start(*off))?;
            let mut left = *len;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let k = f.read(&mut buf[..want])?;
                if k == 0 {
                    return Err(std::io::Error::other(format!(
                        "{} changed while it was written (shorter than {size} bytes)",
                        src.display()
                    )));
                }
                h.update(&buf[..k]);
                self.out.write_all(&buf[..k])?;
                left -= k as u64;
                stored += k as u64;
            }
            at = off + len;
        }
        if f.metadata()?.len() != size {
            return Err(std::io::Error::other(format!(
                "{} changed while it was written",
                src.display()
            )));
        }
        self.out.write_all(&vec![0u8; padding(stored)])?;
        Ok((hex(h), size))
    }

    /// Writes the first member's content (padded with spaces to its reserved size) and the
    /// end of the archive, and flushes the file.
    pub fn finish(mut self, first: &[u8]) -> std::io::Result<()> {
        if first.len() > self.reserve {
            return Err(std::io::Error::other(format!(
                "the first member is {} bytes, {} were reserved",
                first.len(),
                self.reserve
            )));
        }
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.seek(SeekFrom::Start(self.first_at))?;
        self.out.write_all(first)?;
        self.out
            .write_all(&vec![b' '; self.reserve - first.len()])?;
        self.out.flush()?;
        Ok(())
    }
}

/// What `unpack` found: each regular member's SHA-256 (hex) and size, by name, and why it
/// stopped early, if it did (a truncated or damaged stream: what came before is on disk).
#[derive(Debug, Default)]
pub struct Unpacked {
    pub members: std::collections::BTreeMap<String, (String, u64)>,
    pub error: Option<String>,
}

/// A numeric header field: octal (space or NUL terminated), or GNU's base-256.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    let t = text.trim();
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(t, 8).ok()
}

fn field_str(field: &[u8]) -> String {
    String::from_utf8_lossy(&field[..field.iter().position(|b| *b == 0).unwrap_or(field.len())])
        .into_owned()
}

/// Reads exactly `buf.len()` bytes, or says how many it got before the end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}

/// A member's name: its header's, under the ustar prefix when there is one.
fn member_name(h: &[u8; BLOCK]) -> String {
    let name = field_str(&h[..100]);
    if &h[257..263] == b"ustar\0" {
        let prefix = field_str(&h[345..500]);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

/// Whether a member's path stays inside the directory it is unpacked into: not empty, no root,
/// no `..`.
fn stays_inside(rel: &Path) -> bool {
    !rel.as_os_str().is_empty()
        && rel.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// An old GNU sparse member's data map (four entries in the header, more in extension blocks
/// read from `r`) and its real size.
fn sparse_map(r: &mut impl Read, h: &[u8; BLOCK]) -> std::io::Result<(Vec<(u64, u64)>, u64)> {
    let mut map = Vec::new();
    let mut take = |b: &[u8], n: usize| {
        for i in 0..n {
            let e = &b[24 * i..24 * i + 24];
            if e[0] == 0 {
                break;
            }
            map.push((
                parse_numeric(&e[..12]).unwrap_or(0),
                parse_numeric(&e[12..]).unwrap_or(0),
            ));
        }
    };
    take(&h[386..482], 4);
    let mut more = h[482] != 0;
    while more {
        let mut x = [0u8; BLOCK];
        if read_full(r, &mut x)? < BLOCK {
            break;
        }
        take(&x[..504], 21);
        more = x[504] != 0;
    }
    Ok((map, parse_numeric(&h[483..495]).unwrap_or(0)))
}

/// Unpacks the tar file `src` into `dest` in one pass, hashing every regular member as it is
/// written (holes of sparse members kept, and hashed as the zeros they read as). Reads what
/// `Writer` writes and what GNU tar's default format holds for such files (ustar and old GNU
/// headers, old GNU sparse members, directories); refuses any other member type and any name
/// that leads out of `dest`.
pub fn unpack(src: &Path, dest: &Path) -> std::io::Result<Unpacked> {
    let mut r = std::io::BufReader::with_capacity(ZEROS, File::open(src)?);
    let mut found = Unpacked::default();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut h = [0u8; BLOCK];
        let got = read_full(&mut r, &mut h)?;
        if got == 0 && !found.members.is_empty() {
            break; // no end blocks, but whole members: GNU tar accepts it too
        }
        if got < BLOCK {
            found.error = Some("the file ends inside a member's header".into());
            break;
        }
        if h.iter().all(|b| *b == 0) {
            break; // the end of the archive
        }
        let stored_sum = parse_numeric(&h[148..156]);
        let mut sum_h = h;
        sum_h[148..156].fill(b' ');
        let sum: u64 = sum_h.iter().map(|b| u64::from(*b)).sum();
        if stored_sum != Some(sum) {
            found.error = Some("a member's header is damaged (checksum)".into());
            break;
        }
        let name = member_name(&h);
        let size = parse_numeric(&h[124..136]).unwrap_or(u64::MAX);
        let mode = parse_numeric(&h[100..108]).unwrap_or(0o644) as u32 & 0o777;
        let rel = Path::new(name.trim_end_matches('/'));
        if !stays_inside(rel) {
            found.error = Some(format!("member {name:?} leads out of the archive"));
            break;
        }
        let to = dest.join(rel);
        match h[156] {
            b'5' => {
                std::fs::create_dir_all(&to)?;
                continue;
            }
            b'0' | 0 | b'S' => {}
            t => {
                found.error = Some(format!(
                    "member {name:?} is of a type this reader does not take ({:?})",
                    char::from(t)
                ));
                break;
            }
        }
        // The data map: the whole file, or an old GNU sparse member's map (four entries in the
        // header, more in extension blocks) and its real size.
        let (map, real) = if h[156] == b'S' {
            sparse_map(&mut r, &h)?
        } else {
            (vec![(0, size)], size)
        };
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = File::create(&to)?;
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        let mut hash = Sha256::new();
        let (mut at, mut stored) = (0u64, 0u64);
        let mut short = false;
        for (off, len) in &map {
            hash_zeros(&mut hash, off.saturating_sub(at));
            out.seek(SeekFrom::Start(*off))?;
            let mut left = *len;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let k = read_full(&mut r, &mut buf[..want])?;
                hash.update(&buf[..k]);
                out.write_all(&buf[..k])?;
                left -= k as u64;
                stored += k as u64;
                if k < want {
                    short = true;
                    break;
                }
            }
            if short {
                break;
            }
            at = off + len;
        }
        if short {
            // What came is on disk (its size tells the caller which member was cut).
            found.error = Some(format!("the file ends inside member {name}"));
            break;
        }
        hash_zeros(&mut hash, real.saturating_sub(at));
        out.set_len(real)?;
        found
            .members
            .insert(name.trim_start_matches("./").to_string(), (hex(hash), real));
        let pad = padding(stored);
        if pad > 0 && read_full(&mut r, &mut buf[..pad])? < pad {
            found.error = Some("the file ends after its last member, without padding".into());
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GNU tar extracts `file` into a new directory `into` (keeping holes).
    fn gnu_extract(file: &Path, into: &Path) {
        std::fs::create_dir_all(into).expect("mkdir");
        let st = std::process::Command::new("tar")
            .arg("-xSf")
            .arg(file)
            .arg("-C")
            .arg(into)
            .status()
            .expect("tar runs");
        assert!(st.success());
    }

    /// GNU tar reads what the writer writes: names, modes, sizes and bytes, the first member as
    /// written at the end, and the hashes are those of the files.
    #[test]
    fn gnu_tar_reads_it() {
        let dir = tempfile::tempdir().expect("dir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("disks")).expect("mkdir");
        let big: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(src.join("disks/a.qcow2"), &big).expect("write");
        std::fs::write(src.join("key"), b"secret\n").expect("write");
        std::fs::set_permissions(
            src.join("key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        std::fs::write(src.join("empty"), b"").expect("write");
        let file = dir.path().join("t.tar");
        let mut w = Writer::create(&file, "golden.json", 4096, 1_700_000_000).expect("create");
        let mut hashes = Vec::new();
        for name in ["disks/a.qcow2", "key", "empty"] {
            hashes.push(w.append_file(name, &src.join(name)).expect("append"));
        }
        w.finish(b"{\"a\": 1}").expect("finish");
        assert_eq!(hashes[0].1, big.len() as u64);
        assert_eq!(
            hashes[2].0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );

        let out = dir.path().join("out");
        gnu_extract(&file, &out);
        assert_eq!(std::fs::read(out.join("disks/a.qcow2")).expect("read"), big);
        assert_eq!(std::fs::read(out.join("key")).expect("read"), b"secret\n");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(out.join("key"))
                .expect("md")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let manifest = std::fs::read_to_string(out.join("golden.json")).expect("read");
        assert_eq!(manifest.len(), 4096);
        assert_eq!(manifest.trim_end(), "{\"a\": 1}");
        let v: serde_json::Value = serde_json::from_str(&manifest).expect("JSON with padding");
        assert_eq!(v["a"], 1);
        let listing = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&file)
            .output()
            .expect("tar runs");
        assert_eq!(
            String::from_utf8_lossy(&listing.stdout),
            "golden.json\ndisks/a.qcow2\nkey\nempty\n"
        );
    }

    /// A file with holes (many, so the map runs into extension blocks, and one at the end) is
    /// stored with its data only, comes back from GNU tar with the same bytes and its holes,
    /// and its hash is that of the whole file.
    #[test]
    fn holes_are_kept_and_gnu_tar_restores_them() {
        let dir = tempfile::tempdir().expect("dir");
        let src = dir.path().join("sparse.qcow2");
        let mib = 1u64 << 20;
        let whole = sparse_file(&src);
        let expected = sha(&whole);
        let file = dir.path().join("t.tar");
        let mut w = Writer::create(&file, "m", 512, 0).expect("create");
        let (hash, size) = w.append_file("disks/s.qcow2", &src).expect("append");
        w.finish(b"{}").expect("finish");
        assert_eq!((hash, size), (expected, 64 * mib));
        assert!(
            std::fs::metadata(&file).expect("md").len() < 8 * mib,
            "only the data is stored"
        );
        let out = dir.path().join("out");
        gnu_extract(&file, &out);
        let back = out.join("disks/s.qcow2");
        assert_eq!(std::fs::read(&back).expect("read"), whole);
        let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&back).expect("md"));
        assert!(blocks * 512 < 8 * mib, "holes restored: {blocks} blocks");
    }

    fn sparse_file(path: &Path) -> Vec<u8> {
        use std::io::Write as _;
        let mib = 1u64 << 20;
        let mut f = File::create(path).expect("create");
        f.set_len(64 * mib).expect("len");
        for i in 0..30u64 {
            f.seek(SeekFrom::Start(2 * i * mib)).expect("seek");
            f.write_all(&vec![(i + 1) as u8; 4096 * (i as usize + 1)])
                .expect("write");
        }
        drop(f);
        std::fs::read(path).expect("read")
    }

    fn sha(b: &[u8]) -> String {
        Sha256::digest(b)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `unpack` reads back what GNU tar writes for a golden's tree (its default format:
    /// directories, old GNU headers, a sparse member), with holes and hashes, and what the
    /// writer writes.
    #[test]
    fn unpack_reads_gnu_tar_and_the_writer() {
        let dir = tempfile::tempdir().expect("dir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("disks")).expect("mkdir");
        let sparse = sparse_file(&src.join("disks/s.qcow2"));
        std::fs::write(src.join("lab.yaml"), b"name: x\n").expect("write");
        let gnu = dir.path().join("gnu.tar");
        let st = std::process::Command::new("tar")
            .arg("-cSf")
            .arg(&gnu)
            .arg("-C")
            .arg(&src)
            .args(["lab.yaml", "disks"])
            .status()
            .expect("tar runs");
        assert!(st.success());
        let mine = dir.path().join("mine.tar");
        let mut w = Writer::create(&mine, "golden.json", 512, 0).expect("create");
        w.append_file("lab.yaml", &src.join("lab.yaml"))
            .expect("append");
        w.append_file("disks/s.qcow2", &src.join("disks/s.qcow2"))
            .expect("append");
        w.finish(b"{}").expect("finish");
        for (file, n) in [(&gnu, 2), (&mine, 3)] {
            let out = tempfile::tempdir().expect("dir");
            let got = unpack(file, out.path()).expect("unpacks");
            assert_eq!(got.error, None, "{}", file.display());
            assert_eq!(got.members.len(), n, "{:?}", got.members);
            assert_eq!(
                got.members["disks/s.qcow2"],
                (sha(&sparse), sparse.len() as u64)
            );
            assert_eq!(got.members["lab.yaml"].0, sha(b"name: x\n"));
            let back = out.path().join("disks/s.qcow2");
            assert_eq!(std::fs::read(&back).expect("read"), sparse);
            let blocks =
                std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&back).expect("md"));
            assert!(blocks * 512 < 8 << 20, "holes kept: {blocks} blocks");
        }
    }

    /// A cut file stops inside a member: what came is on disk, shorter, and the error says so;
    /// a name out of the archive and a damaged header are refused.
    #[test]
    fn unpack_names_a_cut_member_and_refuses_escapes() {
        let dir = tempfile::tempdir().expect("dir");
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.path().join("big"), &big).expect("write");
        let file = dir.path().join("t.tar");
        let mut w = Writer::create(&file, "m", 512, 0).expect("create");
        w.append_file("disks/big", &dir.path().join("big"))
            .expect("append");
        w.finish(b"{}").expect("finish");
        let bytes = std::fs::read(&file).expect("read");
        let cut = dir.path().join("cut.tar");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let out = tempfile::tempdir().expect("dir");
        let got = unpack(&cut, out.path()).expect("reads");
        assert_eq!(
            got.error.as_deref(),
            Some("the file ends inside member disks/big")
        );
        assert!(got.members.contains_key("m"));
        assert!(
            std::fs::metadata(out.path().join("disks/big"))
                .expect("md")
                .len()
                < big.len() as u64
        );

        let mut evil = bytes.clone();
        evil[1024..1024 + 100].fill(0);
        evil[1024..1024 + 9].copy_from_slice(b"../../big");
        let sum_at = 1024 + 148;
        evil[sum_at..sum_at + 8].fill(b' ');
        let sum: u64 = evil[1024..1536].iter().map(|b| u64::from(*b)).sum();
        evil[sum_at..sum_at + 6].copy_from_slice(format!("{sum:06o}").as_bytes());
        evil[sum_at + 6] = 0;
        let p = dir.path().join("evil.tar");
        std::fs::write(&p, &evil).expect("write");
        let got = unpack(&p, out.path()).expect("reads");
        assert!(
            got.error
                .as_deref()
                .is_some_and(|e| e.contains("leads out")),
            "{:?}",
            got.error
        );
        let mut damaged = bytes;
        damaged[1024 + 3] ^= 1;
        std::fs::write(&p, &damaged).expect("write");
        let got = unpack(&p, out.path()).expect("reads");
        assert!(
            got.error.as_deref().is_some_and(|e| e.contains("checksum")),
            "{:?}",
            got.error
        );
    }

    #[test]
    fn sizes_past_ustar_use_base_256_and_long_names_are_refused() {
        let mut f = [0u8; 12];
        numeric(&mut f, 8u64.pow(11) - 1);
        assert_eq!(&f, b"77777777777\0");
        numeric(&mut f, 8u64.pow(11));
        assert_eq!(f[0], 0x80);
        assert_eq!(
            u64::from_be_bytes(f[4..].try_into().expect("8 bytes")),
            8u64.pow(11)
        );
        assert_eq!(parse_numeric(&f), Some(8u64.pow(11)));
        numeric(&mut f, 0o755);
        assert_eq!(parse_numeric(&f), Some(0o755));
        assert!(header(&"x".repeat(101), 0o644, 0, 0, None).is_err());
    }

    #[test]
    fn a_first_member_larger_than_its_reserve_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let w = Writer::create(&dir.path().join("t.tar"), "m", 4, 0).expect("create");
        assert!(w.finish(b"12345").is_err());
    }
}
