//! File paths (the kernel's `d_path`) and open file descriptors.
//!
//! A path is rebuilt from `file->f_path = { mnt, dentry }` by following `dentry->d_parent`
//! up to the root of the mount (`vfsmount->mnt_root`), then crossing to the parent mount:
//! the dentry becomes `mount->mnt_mountpoint` and the mount `mount->mnt_parent`, until the
//! root mount (its own parent). PANDA's `path.mnt_parent_offset` and
//! `path.mnt_mountpoint_offset` are relative to the `vfsmount` embedded in `struct mount`,
//! so they apply directly to `f_path.mnt`. To turn the parent's `struct mount *` back into
//! a `vfsmount *`, `offsetof(mount, mnt)` is derived from `mnt_parent_offset`:
//! `struct mount` has begun `{ struct hlist_node mnt_hash; struct mount *mnt_parent; ... }`
//! since it was split from `vfsmount` in 3.3, so `offsetof(mount, mnt_parent)` is two
//! pointers and `offsetof(mount, mnt) = 2 * sizeof(void *) - mnt_parent_offset`.
//!
//! Pseudo files (pipes, sockets, anonymous inodes) get their names from `d_op->d_dname`,
//! a function that cannot be run here; their path is their dentry name, as far as it goes.

use super::{Linux, at, need};
use crate::osi::{FileDescriptor, Incomplete, Listing, OsiError};

/// Most path components followed (the kernel has no limit, but a real path is far shorter).
pub const MAX_COMPONENTS: usize = 256;

/// Most mounts crossed for one path.
pub const MAX_MOUNTS: usize = 64;

/// Largest file name read (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Largest file descriptor table walked.
pub const MAX_FDS: u64 = 65_536;

/// Guest bytes one listing of open files (or of mappings) may read: ample for thousands of
/// files with deep paths, and a bound on a hostile table (see [`crate::mem::Budgeted`]).
pub const READ_BUDGET: usize = 4 << 20;

/// `dentry->d_name.name`, at most `qstr.len` (or `NAME_MAX`) bytes.
pub fn dentry_name(linux: &Linux<'_>, dentry: u64) -> Result<String, OsiError> {
    let name_off = need(
        linux.info.qstr.name_offset,
        "qstr.name_offset",
        "read file names",
    )?;
    let qstr = at(dentry, linux.info.path.d_name_offset);
    let name = linux.read_ptr_at(qstr, name_off)?;
    let max = match linux.info.qstr.len_offset {
        Some(off) => (linux.read_u32_at(qstr, off)? as usize).min(NAME_MAX),
        None => NAME_MAX,
    };
    let (bytes, _) = linux.mem.read_cstr(name, max)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The path of `dentry` in the mount whose `vfsmount` is at `vfsmnt` (0 if unknown: then
/// only `d_parent` links are followed).
pub fn d_path(linux: &Linux<'_>, mut dentry: u64, mut vfsmnt: u64) -> Result<String, OsiError> {
    let p = &linux.info.path;
    let mounts = match (
        p.mnt_root_offset,
        p.mnt_parent_offset,
        p.mnt_mountpoint_offset,
    ) {
        (Some(root), Some(parent), Some(mountpoint)) if vfsmnt != 0 => {
            Some((root, parent, mountpoint))
        }
        _ => None,
    };
    let mut parts: Vec<String> = Vec::new();
    let mut crossed = 0;
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > MAX_COMPONENTS + MAX_MOUNTS + 1 {
            return Err(OsiError::Corrupt {
                what: "path too deep",
                at: dentry,
            });
        }
        if dentry == 0 {
            return Err(OsiError::Corrupt {
                what: "NULL dentry",
                at: vfsmnt,
            });
        }
        let parent = linux.read_ptr_at(dentry, p.d_parent_offset)?;
        if let Some((root_off, parent_off, mountpoint_off)) = mounts {
            let mnt_root = linux.read_ptr_at(vfsmnt, root_off)?;
            if dentry == mnt_root || dentry == parent {
                let mount = at(vfsmnt, parent_off.wrapping_sub(2 * linux.ptr_size() as i64));
                let parent_mount = linux.read_ptr_at(vfsmnt, parent_off)?;
                if parent_mount == mount || parent_mount == 0 || dentry != mnt_root {
                    break; // the root mount, or a dentry outside its mount (pseudo fs)
                }
                crossed += 1;
                if crossed > MAX_MOUNTS {
                    return Err(OsiError::Corrupt {
                        what: "mount chain too long",
                        at: vfsmnt,
                    });
                }
                dentry = linux.read_ptr_at(vfsmnt, mountpoint_off)?;
                vfsmnt = at(
                    parent_mount,
                    (2 * linux.ptr_size() as i64).wrapping_sub(parent_off),
                );
                continue;
            }
        } else if dentry == parent {
            break;
        }
        if parts.len() >= MAX_COMPONENTS {
            return Err(OsiError::Corrupt {
                what: "path too deep",
                at: dentry,
            });
        }
        parts.push(dentry_name(linux, dentry)?);
        dentry = parent;
    }
    if parts.is_empty() {
        // A root, or a pseudo file whose only name is its own dentry's.
        let name = dentry_name(linux, dentry).unwrap_or_default();
        return Ok(if name.is_empty() || name == "/" {
            "/".to_string()
        } else {
            name
        });
    }
    parts.reverse();
    Ok(format!("/{}", parts.join("/")))
}

/// The path of the open file `file` (`file->f_path`).
pub fn file_path(linux: &Linux<'_>, file: u64) -> Result<String, OsiError> {
    let fs = &linux.info.fs;
    let dentry_off = need(
        fs.f_path_dentry_offset,
        "fs.f_path_dentry_offset",
        "find a file's path",
    )?;
    let dentry = linux.read_ptr_at(file, dentry_off)?;
    let vfsmnt = match fs.f_path_mnt_offset {
        Some(off) => linux.read_ptr_at(file, off)?,
        None => 0,
    };
    d_path(linux, dentry, vfsmnt)
}

/// Open descriptors of `task`: `task->files->fdt->fd[0..max_fds]`, reading at most
/// [`READ_BUDGET`] bytes (beyond it the listing stops, flagged).
pub fn fds(linux: &Linux<'_>, task: u64) -> Result<Listing<FileDescriptor>, OsiError> {
    let budget = crate::mem::Budgeted::new(linux.mem, READ_BUDGET);
    let linux = &Linux::new(&budget, linux.info, linux.ctx);
    let fs = &linux.info.fs;
    let files_off = need(
        linux.info.task.files_offset,
        "task.files_offset",
        "list file descriptors",
    )?;
    let fdt_off = need(fs.fdt_offset, "fs.fdt_offset", "list file descriptors")?;
    let fd_off = need(fs.fd_offset, "fs.fd_offset", "list file descriptors")?;
    let files = linux.read_ptr_at(task, files_off)?;
    if files == 0 {
        return Ok(Listing::complete(Vec::new()));
    }
    let fdt = linux.read_ptr_at(files, fdt_off)?;
    let array = linux.read_ptr_at(fdt, fd_off)?;
    // Without max_fds, the table embedded in files_struct holds NR_OPEN_DEFAULT =
    // BITS_PER_LONG descriptors; a larger, separate table cannot be sized.
    let (max, mut incomplete) = match fs.max_fds_offset {
        Some(off) => (u64::from(linux.read_u32_at(fdt, off)?), None),
        None => {
            let embedded = fs.fdtab_offset.is_some_and(|o| at(files, o) == fdt);
            let n = linux.ptr_size() * 8;
            (
                n,
                (!embedded).then_some(Incomplete::Limit { max: n as usize }),
            )
        }
    };
    if max > MAX_FDS {
        incomplete = Some(Incomplete::Limit {
            max: MAX_FDS as usize,
        });
    }
    let mut items = Vec::new();
    for fd in 0..max.min(MAX_FDS) {
        if budget.exhausted() {
            incomplete = Some(Incomplete::Limit { max: items.len() });
            break;
        }
        let file = match linux.read_ptr(array.wrapping_add(fd * linux.ptr_size())) {
            Ok(f) => f,
            Err(f) => {
                return Ok(Listing {
                    items,
                    incomplete: Some(f.into()),
                });
            }
        };
        if file == 0 {
            continue;
        }
        let position = match fs.f_pos_offset {
            Some(off) => linux.mem.read_u64(at(file, off)).unwrap_or(0),
            None => 0,
        };
        items.push(FileDescriptor {
            fd: fd as u32,
            path: file_path(linux, file).ok(),
            position,
        });
    }
    Ok(Listing { items, incomplete })
}
