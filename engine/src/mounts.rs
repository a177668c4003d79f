//! The mount syscalls the engine makes itself (private tmpfs for secrets and
//! bundles, detaching them) and the mount table it reads (recovery, fsck).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Mounts a tmpfs of `size` bytes at `dir`, root-only (0700), nosuid, nodev,
/// noexec: what lives there is read by buildd, never run.
pub(crate) fn tmpfs(dir: &Path, size: usize) -> io::Result<()> {
    let target = cstring(dir)?;
    let data = CString::new(format!("mode=0700,size={size}")).expect("no nul");
    // SAFETY: valid nul-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NODEV | libc::MS_NOSUID | libc::MS_NOEXEC,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts `dir`, detached: a process that somehow still holds a file open
/// cannot keep buildd from going on; the memory goes when it lets go.
pub(crate) fn detach(dir: &Path) -> io::Result<()> {
    let target = cstring(dir)?;
    // SAFETY: valid nul-terminated string.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Every mount point of this process's namespace, in the order they were
/// mounted, from `/proc/self/mountinfo`.
pub(crate) fn mount_points() -> io::Result<Vec<PathBuf>> {
    Ok(parse_mount_points(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The mount point field of each mountinfo line.
fn parse_mount_points(info: &str) -> Vec<PathBuf> {
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                u8::try_from(d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'))).ok()
            });
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        let info = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /var/lib/buildd/exec/x/rootfs rw - overlay overlay rw\n";
        assert_eq!(
            parse_mount_points(info),
            [
                PathBuf::from("/mnt/a b"),
                PathBuf::from("/var/lib/buildd/exec/x/rootfs")
            ]
        );
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
        // Out of a byte's range: kept as written, never a panic.
        assert_eq!(unescape(r"/x\777"), r"/x\777");
    }
}
