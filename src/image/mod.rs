//! Guest images: the built-in recipes and where a built or imported image lives [pure].

use std::path::PathBuf;

use crate::model::ImageRef;
use crate::paths::Dirs;
use crate::render::BootImage;

/// Built-in image recipes, shipped inside the binary from `images/`.
pub const RECIPES: &[(&str, &str)] = &[("debian-12", include_str!("../../images/debian-12.yaml"))];

/// Names of the built-in recipes.
pub fn recipe_names() -> Vec<&'static str> {
    RECIPES.iter().map(|(n, _)| *n).collect()
}

/// Kernel command line for our own images: the root filesystem is the whole of `vda` (no partition
/// table), the serial port is the console, and cloud-init is pinned to the NoCloud seed on `vdb`.
pub const DIRECT_BOOT_CMDLINE: &str =
    "root=/dev/vda rw console=ttyS0 ds=nocloud net.ifnames=1 quiet";

/// Where the image for `image` is, or will be once built.
pub fn boot_image(dirs: &Dirs, image: &ImageRef) -> BootImage {
    match image {
        ImageRef::Recipe(name) => {
            let dir = dirs.images().join(name);
            BootImage {
                disk: dir.join("disk.qcow2"),
                format: "qcow2".into(),
                kernel: Some(dir.join("vmlinuz")),
                initrd: Some(dir.join("initrd.img")),
                cmdline: Some(DIRECT_BOOT_CMDLINE.into()),
            }
        }
        ImageRef::File(path) => BootImage {
            disk: path.clone(),
            format: if path.extension().is_some_and(|e| e == "qcow2") {
                "qcow2".into()
            } else {
                "raw".into()
            },
            kernel: None,
            initrd: None,
            cmdline: None,
        },
    }
}

/// Path form of the base image, as plans print it.
pub fn backing_path(dirs: &Dirs, image: &ImageRef) -> PathBuf {
    boot_image(dirs, image).disk
}
