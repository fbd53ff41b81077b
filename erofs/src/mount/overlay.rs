//! The overlay of a composefs mount (C's `lcfs_mount_ovl` and `lcfs_mount_ovl_legacy`): the
//! private EROFS mount as the lower layer, the object folders as data-only layers, optionally an
//! upper layer, `metacopy=on,redirect_dir=on` always and `verity=require` when asked.
//!
//! The new mount API is tried first. A kernel whose overlayfs still uses the legacy option
//! parser accepts any key, so an `unsupported` key that succeeds means "legacy kernel". A
//! kernel without `lowerdir+`/`datadir+` (before 6.7) answers EINVAL to them or to the final
//! create; both lead to the legacy option string, whose paths need `,` escaped as `\,`
//! (overlayfs splits options at unescaped commas). That string first uses data-only layers
//! (`lowerdir=IMG::B1::B2`, 6.5+) with `MS_SILENT` so that an older kernel's refusal does not
//! log, then plain lower layers (`lowerdir=IMG:B1:B2`), which the image's 256 whiteouts and
//! opaque root make equivalent.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags,
};

use super::{MountError, MountOptions, OverlayMode, OverlayVia, Verity, MOUNT_SOURCE};

/// How the overlay went.
#[derive(Debug)]
pub struct Overlay {
    pub via: OverlayVia,
    pub verity_required: bool,
}

/// Mounts the overlay of `lower` (the EROFS mount) and `opts.objdirs` at `target`.
pub fn mount(lower: &Path, target: &Path, opts: &MountOptions) -> Result<Overlay, MountError> {
    match opts.strategy.overlay {
        OverlayMode::Auto => match mount_new_api(lower, target, opts) {
            Ok(verity_required) => {
                return Ok(Overlay {
                    via: OverlayVia::NewApi,
                    verity_required,
                })
            }
            Err(NewApi::Unavailable) => mount_legacy(lower, target, opts, true),
            Err(NewApi::Failed(e)) => Err(e),
        },
        OverlayMode::Legacy => mount_legacy(lower, target, opts, true),
        OverlayMode::LegacyPlainLower => mount_legacy(lower, target, opts, false),
    }
}

enum NewApi {
    /// The kernel's overlayfs cannot be mounted this way: use the legacy string.
    Unavailable,
    Failed(MountError),
}

/// The new-API overlay; `Ok(verity_required)`.
fn mount_new_api(lower: &Path, target: &Path, opts: &MountOptions) -> Result<bool, NewApi> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(NewApi::Unavailable),
        Err(e) => return Err(NewApi::Failed(MountError::os("fsopen overlay", e))),
    };
    if fsconfig_set_string(&fs, "unsupported", "unsupported").is_ok() {
        return Err(NewApi::Unavailable);
    }
    let fail = |what: String| move |e: Errno| NewApi::Failed(MountError::os(what, e));
    // EINVAL where C reads it as "this kernel lacks lowerdir+/datadir+": go legacy.
    let or_legacy = |what: String| {
        move |e: Errno| match e {
            Errno::INVAL => NewApi::Unavailable,
            e => NewApi::Failed(MountError::os(what, e)),
        }
    };
    let set = |key: &str, value: &Path| {
        fsconfig_set_string(&fs, key, value).map_err(or_legacy(format!(
            "overlay: fsconfig {key}={}",
            value.display()
        )))
    };
    fsconfig_set_string(&fs, "source", MOUNT_SOURCE)
        .map_err(fail("overlay: fsconfig source".into()))?;
    fsconfig_set_string(&fs, "metacopy", "on")
        .map_err(fail("overlay: fsconfig metacopy=on".into()))?;
    fsconfig_set_string(&fs, "redirect_dir", "on")
        .map_err(fail("overlay: fsconfig redirect_dir=on".into()))?;
    let mut verity_required = false;
    if opts.verity != Verity::Off {
        match fsconfig_set_string(&fs, "verity", "require") {
            Ok(()) => verity_required = true,
            Err(e) if opts.verity == Verity::Require => {
                return Err(fail("overlay: fsconfig verity=require".into())(e))
            }
            Err(_) => {}
        }
    }
    set("lowerdir+", lower)?;
    for dir in &opts.objdirs {
        set("datadir+", dir)?;
    }
    if let Some(upper) = &opts.upperdir {
        set("upperdir", upper)?;
    }
    if let Some(work) = &opts.workdir {
        set("workdir", work)?;
    }
    fsconfig_create(&fs).map_err(or_legacy(format!(
        "overlay: mounting on {}",
        target.display()
    )))?;
    let attrs = if opts.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(fail("overlay: fsmount".into()))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(fail(format!("overlay: move_mount to {}", target.display())))?;
    Ok(verity_required)
}

/// Appends `path` with every `,` escaped as `\,`.
pub fn escape_into(out: &mut Vec<u8>, path: &[u8]) {
    for &b in path {
        if b == b',' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The legacy overlay option string: `metacopy=on,redirect_dir=on,lowerdir=L{sep}B1{sep}B2…`
/// (`::` for data-only layers, else `:`), then `upperdir=`, `workdir=`, and `verity=require`
/// when verity is required (TRY is ignored here, as C ignores it). Paths are comma-escaped.
pub fn legacy_options(lower: &Path, opts: &MountOptions, data_only: bool) -> Vec<u8> {
    let mut s = b"metacopy=on,redirect_dir=on,lowerdir=".to_vec();
    escape_into(&mut s, lower.as_os_str().as_bytes());
    for dir in &opts.objdirs {
        s.extend_from_slice(if data_only { b"::" } else { b":" });
        escape_into(&mut s, dir.as_os_str().as_bytes());
    }
    if let Some(upper) = &opts.upperdir {
        s.extend_from_slice(b",upperdir=");
        escape_into(&mut s, upper.as_os_str().as_bytes());
    }
    if let Some(work) = &opts.workdir {
        s.extend_from_slice(b",workdir=");
        escape_into(&mut s, work.as_os_str().as_bytes());
    }
    if opts.verity == Verity::Require {
        s.extend_from_slice(b",verity=require");
    }
    s
}

fn mount_legacy(
    lower: &Path,
    target: &Path,
    opts: &MountOptions,
    data_only_first: bool,
) -> Result<Overlay, MountError> {
    let mut data_only = data_only_first;
    loop {
        let data = CString::new(legacy_options(lower, opts, data_only))
            .map_err(|_| MountError::os("overlay options", std::io::Error::from(Errno::INVAL)))?;
        let mut flags = MountFlags::empty();
        if opts.readonly {
            flags |= MountFlags::RDONLY;
        }
        if data_only {
            flags |= MountFlags::SILENT;
        }
        match rustix::mount::mount(MOUNT_SOURCE, target, "overlay", flags, data.as_c_str()) {
            Ok(()) => {
                return Ok(Overlay {
                    via: if data_only {
                        OverlayVia::LegacyDataOnly
                    } else {
                        OverlayVia::LegacyPlainLower
                    },
                    verity_required: opts.verity == Verity::Require,
                })
            }
            Err(Errno::INVAL) if data_only => data_only = false,
            Err(e) => {
                return Err(MountError::os(
                    format!(
                        "mount overlay on {} -o {}",
                        target.display(),
                        data.to_string_lossy()
                    ),
                    e,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn opts(objdirs: &[&str]) -> MountOptions<'static> {
        MountOptions {
            objdirs: objdirs.iter().map(PathBuf::from).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn legacy_string_separates_layers_and_escapes_commas() {
        let o = opts(&["/a,b", "/c"]);
        let s = legacy_options(Path::new("/tmp/.composefs.X,"), &o, true);
        assert_eq!(
            s,
            b"metacopy=on,redirect_dir=on,lowerdir=/tmp/.composefs.X\\,::/a\\,b::/c".to_vec()
        );
        let s = legacy_options(Path::new("/l"), &o, false);
        assert_eq!(
            s,
            b"metacopy=on,redirect_dir=on,lowerdir=/l:/a\\,b:/c".to_vec()
        );
    }

    #[test]
    fn legacy_string_upper_work_and_verity() {
        let mut o = opts(&["/o"]);
        o.upperdir = Some("/u,1".into());
        o.workdir = Some("/w".into());
        o.verity = Verity::Try;
        let s = legacy_options(Path::new("/l"), &o, true);
        assert_eq!(
            s,
            b"metacopy=on,redirect_dir=on,lowerdir=/l::/o,upperdir=/u\\,1,workdir=/w".to_vec()
        );
        o.verity = Verity::Require;
        let s = legacy_options(Path::new("/l"), &o, true);
        assert!(s.ends_with(b",workdir=/w,verity=require"));
    }
}
