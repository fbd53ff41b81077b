//! `composefs-fuse [-f] [-d] [-s] -o source=IMAGE,basedir=DIR[:DIR…][,noacl] MOUNTPOINT`:
//! serves a composefs image through FUSE, as C composefs 1.0.8's (uninstalled) cfs-fuse does.
//! Run as `mkcfs-rs fuse` or through a symlink named `composefs-fuse`.
//!
//! The command line, the startup checks and their messages and exit codes are C's (libfuse's
//! option syntax: `-o` lists split at unescaped commas, one mount point, `-h`, `-V`, `-d`, `-f`,
//! `-s`, `clone_fd`, `max_idle_threads=`). The server ([`fs`]) uses the `fuser` crate: no libfuse
//! is needed to build or run it; as root it mounts directly, otherwise through `fusermount3`.
//!
//! Like C it daemonizes unless `-f` (or `-d`) is given: the parent returns once the mount is up
//! (exit 0) or failed (the child's exit code); the server runs on in its own session with its
//! standard streams on /dev/null. It ends when the mount is unmounted (`umount`,
//! `fusermount -u`).
//!
//! Beyond C: `basedir=` takes several directories separated by `:` (objects are looked up in
//! order, as mount.composefs's data layers are); the image's header and superblock are checked
//! before mounting; see [`fs`] for what is served.

mod fs;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Exit;

/// Set in the environment of the server a daemonizing parent starts: its stdout is the pipe on
/// which it reports that the mount is up.
const READY_ENV: &str = "MKCFS_FUSE_READY_PIPE";

/// The command line, parsed the libfuse way.
#[derive(Debug, Default)]
struct Args {
    help: bool,
    version: bool,
    debug: bool,
    foreground: bool,
    single_thread: bool,
    mountpoint: Option<OsString>,
    source: Option<OsString>,
    basedir: Option<OsString>,
    noacl: bool,
    allow_other: bool,
    allow_root: bool,
    auto_unmount: bool,
    /// Mount flags libfuse would pass on (`nosuid`, `noexec`, …).
    flags: Vec<fuser::MountOption>,
    fsname: Option<String>,
    subtype: Option<String>,
    /// What libfuse would refuse as `unknown option(s)`.
    unknown: Vec<String>,
}

/// A usage error libfuse reports before anything else: its message, exit 1.
struct UsageError(String);

/// Splits an `-o` value at unescaped commas; a backslash escapes the next character.
fn split_options(v: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    let mut bytes = v.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => {
                if let Some(&n) = bytes.next() {
                    out.last_mut().expect("non-empty").push(n);
                }
            }
            b',' => out.push(Vec::new()),
            _ => out.last_mut().expect("non-empty").push(b),
        }
    }
    out.retain(|o| !o.is_empty());
    out
}

impl Args {
    fn option(&mut self, opt: &[u8]) {
        let (key, value) = match opt.iter().position(|&b| b == b'=') {
            Some(i) => (&opt[..i], Some(&opt[i + 1..])),
            None => (opt, None),
        };
        let os = |v: &[u8]| OsStr::from_bytes(v).to_os_string();
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        use fuser::MountOption as M;
        match (key, value) {
            (b"source", Some(v)) => self.source = Some(os(v)),
            (b"basedir", Some(v)) => self.basedir = Some(os(v)),
            (b"noacl", None) => self.noacl = true,
            (b"debug", None) => self.debug = true,
            (b"clone_fd", None) | (b"max_idle_threads", Some(_)) => {}
            (b"ro" | b"default_permissions", None) => {}
            (b"allow_other", None) => self.allow_other = true,
            (b"allow_root", None) => self.allow_root = true,
            (b"auto_unmount", None) => self.auto_unmount = true,
            (b"nosuid", None) => self.flags.push(M::NoSuid),
            (b"nodev", None) => self.flags.push(M::NoDev),
            (b"noexec", None) => self.flags.push(M::NoExec),
            (b"noatime", None) => self.flags.push(M::NoAtime),
            (b"fsname", Some(v)) => self.fsname = Some(text(v)),
            (b"subtype", Some(v)) => self.subtype = Some(text(v)),
            _ => self.unknown.push(format!("-o {}", text(opt))),
        }
    }

    fn parse(args: &[OsString]) -> Result<Args, UsageError> {
        let mut a = Args::default();
        let mut it = args.iter();
        let mut only_positional = false;
        while let Some(arg) = it.next() {
            let b = arg.as_bytes();
            if only_positional || !b.starts_with(b"-") || b == b"-" {
                if a.mountpoint.is_some() {
                    return Err(UsageError(format!(
                        "fuse: invalid argument `{}'",
                        arg.to_string_lossy()
                    )));
                }
                a.mountpoint = Some(arg.clone());
                continue;
            }
            match b {
                b"--" => only_positional = true,
                b"-h" | b"--help" => a.help = true,
                b"-V" | b"--version" => a.version = true,
                b"-d" => a.debug = true,
                b"-f" => a.foreground = true,
                b"-s" => a.single_thread = true,
                b"-o" => {
                    let Some(v) = it.next() else {
                        return Err(UsageError("fuse: missing argument after `-o'".into()));
                    };
                    for o in split_options(v.as_bytes()) {
                        a.option(&o);
                    }
                }
                _ if b.starts_with(b"-o") => {
                    for o in split_options(&b[2..]) {
                        a.option(&o);
                    }
                }
                _ => a.unknown.push(arg.to_string_lossy().into_owned()),
            }
        }
        Ok(a)
    }
}

fn help(bin: &str) {
    print!(
        "usage: {bin} [options] <mountpoint>

    -h   --help            print help
    -V   --version         print version
    -d   -o debug          enable debug output (implies -f)
    -f                     foreground operation
    -s                     disable multi-threaded operation
    -o source=IMAGE        the composefs image to serve (required)
    -o basedir=DIR[:DIR…]  where the objects are, searched in order (required)
    -o noacl               serve no POSIX ACL names
    -o allow_other, allow_root, auto_unmount, nosuid, nodev, noexec, noatime,
       fsname=NAME, subtype=NAME, clone_fd, max_idle_threads=N
"
    );
}

/// C's `errx` with a message that already ends in a newline: an empty line follows.
fn fail_nl(short: &str, message: &str) -> Exit {
    eprintln!("{short}: {message}\n");
    Exit::Failure
}

/// What the startup checks produce: the image (kept for the life of the process) and the
/// opened base directories.
struct Prepared {
    image: &'static [u8],
    basedirs: Vec<OwnedFd>,
}

/// C's startup checks, in C's order and with C's messages, then ours (the whole header and
/// superblock).
fn prepare(short: &str, a: &Args) -> Result<Prepared, Exit> {
    let shown = |v: &Option<OsString>| {
        v.as_ref()
            .map_or("(null)".into(), |s| s.to_string_lossy().into_owned())
    };
    let src = shown(&a.source);
    let mut file = a
        .source
        .as_ref()
        .and_then(|s| File::open(s).ok())
        .ok_or_else(|| fail_nl(short, &format!("Failed to open {src}")))?;
    let len = file
        .metadata()
        .map_err(|_| fail_nl(short, &format!("Failed to stat {src}")))?
        .len();
    if len < 4096 {
        return Err(fail_nl(short, "Too small image"));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|_| fail_nl(short, &format!("Failed to mmap {src}")))?;
    let basedirs = open_basedirs(a.basedir.as_ref())
        .map_err(|dir| fail_nl(short, &format!("Failed to open basedir  {dir}")))?;
    if bytes[..4] != cfs_erofs::format::COMPOSEFS_MAGIC.to_le_bytes() {
        return Err(crate::fail(short, "Wrong cfs magic"));
    }
    if bytes[1024..1028] != cfs_erofs::format::EROFS_MAGIC.to_le_bytes() {
        return Err(crate::fail(short, "Wrong erofs magic"));
    }
    if let Err(e) = cfs_erofs::read::ImageView::new(&bytes) {
        return Err(crate::fail(short, &format!("Invalid image {src}: {e}")));
    }
    // The server serves this image until the process ends.
    let image: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    Ok(Prepared { image, basedirs })
}

/// Opens each `:`-separated base directory (`O_PATH`), or names the one that failed.
fn open_basedirs(value: Option<&OsString>) -> Result<Vec<OwnedFd>, String> {
    use rustix::fs::{open, Mode, OFlags};
    let Some(value) = value else {
        return Err("(null)".into());
    };
    let mut out = Vec::new();
    for dir in value.as_bytes().split(|&b| b == b':') {
        let shown = String::from_utf8_lossy(dir).into_owned();
        if dir.is_empty() {
            return Err(value.to_string_lossy().into_owned());
        }
        let fd = open(
            OsStr::from_bytes(dir),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| shown)?;
        out.push(fd);
    }
    Ok(out)
}

pub fn main(bin: &str, short: &str, args: &[OsString]) -> Exit {
    let a = match Args::parse(args) {
        Ok(a) => a,
        Err(UsageError(m)) => {
            eprintln!("{m}");
            return Exit::Failure;
        }
    };
    if a.help {
        help(bin);
        return Exit::Success;
    }
    if a.version {
        println!(
            "{short} (mkcfs-rs {}): FUSE through the fuser crate, no libfuse",
            env!("CARGO_PKG_VERSION")
        );
        return Exit::Success;
    }
    let Some(mountpoint) = a.mountpoint.clone() else {
        println!("usage: {bin} [options] <mountpoint>");
        println!("       {bin} --help");
        return Exit::Failure;
    };
    let prepared = match prepare(short, &a) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if !a.unknown.is_empty() {
        eprintln!("fuse: unknown option(s): `{}'", a.unknown.join(" "));
        return Exit::Failure;
    }
    let mnt = PathBuf::from(&mountpoint);
    match std::fs::metadata(&mnt) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            eprintln!("fuse: bad mount point `{}': Not a directory", mnt.display());
            return Exit::Failure;
        }
        Err(e) => {
            eprintln!(
                "fuse: bad mount point `{}': {}",
                mnt.display(),
                cfs_erofs::io_message(&e)
            );
            return Exit::Failure;
        }
    }
    let ready_pipe = std::env::var_os(READY_ENV).is_some();
    if !(a.foreground || a.debug || ready_pipe) {
        return daemonize(bin, args);
    }
    serve(short, &a, prepared, &mnt, ready_pipe)
}

/// Starts the server as a child of its own and waits until it reports the mount (exit 0) or
/// exits (its exit code).
fn daemonize(bin: &str, args: &[OsString]) -> Exit {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return crate::fail(bin, &format!("cannot find own executable: {e}")),
    };
    let mut cmd = Command::new(exe);
    // The child dispatches on its argv[0] like this process did.
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "mkcfs-rs".into());
    cmd.arg0(&argv0);
    if Path::new(&argv0)
        .file_name()
        .is_none_or(|n| n != "composefs-fuse")
    {
        cmd.arg("fuse");
    }
    let mut child = match cmd
        .args(args)
        .env(READY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return crate::fail(bin, &format!("cannot start the server: {e}")),
    };
    let mut ready = [0u8; 1];
    let up = child
        .stdout
        .take()
        .is_some_and(|mut out| out.read_exact(&mut ready).is_ok());
    if up {
        return Exit::Success;
    }
    match child.wait() {
        Ok(s) => match s.code() {
            Some(0) | None => Exit::Failure,
            Some(c) => Exit::Code(u8::try_from(c).unwrap_or(1)),
        },
        Err(_) => Exit::Failure,
    }
}

fn serve(short: &str, a: &Args, p: Prepared, mnt: &Path, ready_pipe: bool) -> Exit {
    let settings = fs::Settings {
        noacl: a.noacl,
        debug: a.debug,
    };
    let filesystem = match fs::ComposefsFs::new(p.image, p.basedirs, settings) {
        Ok(f) => f,
        Err(e) => return crate::fail(short, &format!("Invalid image: {e}")),
    };
    use fuser::MountOption as M;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        M::RO,
        M::DefaultPermissions,
        M::FSName(a.fsname.clone().unwrap_or_else(|| "composefs-fuse".into())),
        M::Subtype(a.subtype.clone().unwrap_or_else(|| "composefs-fuse".into())),
        M::NoSuid,
        M::NoDev,
    ];
    config.mount_options.extend(a.flags.iter().cloned());
    if a.auto_unmount {
        config.mount_options.push(M::AutoUnmount);
    }
    config.acl = if a.allow_other {
        fuser::SessionACL::All
    } else if a.allow_root || a.auto_unmount {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(if a.single_thread { 1 } else { 4 });
    config.clone_fd = !a.single_thread;
    let session = match fuser::Session::new(filesystem, mnt, &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "fuse: mount failed on `{}': {}",
                mnt.display(),
                cfs_erofs::io_message(&e)
            );
            return Exit::Failure;
        }
    };
    if ready_pipe {
        detach();
    }
    match session.run() {
        Ok(()) => Exit::Success,
        Err(e) => {
            if !ready_pipe {
                eprintln!("{short}: {}", cfs_erofs::io_message(&e));
            }
            Exit::Failure
        }
    }
}

/// Tells the waiting parent that the mount is up, then leaves its session and its streams,
/// as daemon(3) would.
fn detach() {
    let _ = io::stdout().write_all(b"\n");
    let _ = io::stdout().flush();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        Args::parse(&v).map_err(|UsageError(m)| m)
    }

    #[test]
    fn options_split_like_libfuse() {
        assert_eq!(
            split_options(br"source=a\,b,basedir=x:y,,noacl"),
            [
                b"source=a,b".to_vec(),
                b"basedir=x:y".to_vec(),
                b"noacl".to_vec()
            ]
        );
        let a = parse(&[
            "-f",
            "-oro",
            "-o",
            "source=/i,basedir=/a:/b,noacl,foo",
            "/mnt",
        ])
        .unwrap();
        assert!(a.foreground && a.noacl);
        assert_eq!(a.source.as_deref(), Some(OsStr::new("/i")));
        assert_eq!(a.basedir.as_deref(), Some(OsStr::new("/a:/b")));
        assert_eq!(a.mountpoint.as_deref(), Some(OsStr::new("/mnt")));
        assert_eq!(a.unknown, ["-o foo"]);
        assert_eq!(
            parse(&["/m", "/n"]).err().as_deref(),
            Some("fuse: invalid argument `/n'")
        );
        assert!(parse(&["-o"]).is_err());
    }

    #[test]
    fn basedirs_are_colon_separated_and_all_opened() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let both = OsString::from(format!("{}:{}", a.display(), b.display()));
        assert_eq!(open_basedirs(Some(&both)).unwrap().len(), 2);
        let missing = OsString::from(format!("{}:{}/nope", a.display(), b.display()));
        assert_eq!(
            open_basedirs(Some(&missing)).unwrap_err(),
            format!("{}/nope", b.display())
        );
        assert!(open_basedirs(Some(&OsString::from("a::b"))).is_err());
        assert_eq!(open_basedirs(None).unwrap_err(), "(null)");
    }
}
