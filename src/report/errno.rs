//! Linux errno names, for calling out failed calls (`-2` → `ENOENT`).
//!
//! The numbers are the generic ones (`include/uapi/asm-generic/errno-base.h` and
//! `errno.h`), which x86 (both i386 and x86_64) uses unchanged.

/// `(number, name, description)` for errno 1..=133.
const ERRNOS: [(&str, &str); 133] = [
    ("EPERM", "Operation not permitted"),
    ("ENOENT", "No such file or directory"),
    ("ESRCH", "No such process"),
    ("EINTR", "Interrupted system call"),
    ("EIO", "I/O error"),
    ("ENXIO", "No such device or address"),
    ("E2BIG", "Argument list too long"),
    ("ENOEXEC", "Exec format error"),
    ("EBADF", "Bad file number"),
    ("ECHILD", "No child processes"),
    ("EAGAIN", "Try again"),
    ("ENOMEM", "Out of memory"),
    ("EACCES", "Permission denied"),
    ("EFAULT", "Bad address"),
    ("ENOTBLK", "Block device required"),
    ("EBUSY", "Device or resource busy"),
    ("EEXIST", "File exists"),
    ("EXDEV", "Cross-device link"),
    ("ENODEV", "No such device"),
    ("ENOTDIR", "Not a directory"),
    ("EISDIR", "Is a directory"),
    ("EINVAL", "Invalid argument"),
    ("ENFILE", "File table overflow"),
    ("EMFILE", "Too many open files"),
    ("ENOTTY", "Not a typewriter"),
    ("ETXTBSY", "Text file busy"),
    ("EFBIG", "File too large"),
    ("ENOSPC", "No space left on device"),
    ("ESPIPE", "Illegal seek"),
    ("EROFS", "Read-only file system"),
    ("EMLINK", "Too many links"),
    ("EPIPE", "Broken pipe"),
    ("EDOM", "Math argument out of domain of func"),
    ("ERANGE", "Math result not representable"),
    ("EDEADLK", "Resource deadlock would occur"),
    ("ENAMETOOLONG", "File name too long"),
    ("ENOLCK", "No record locks available"),
    ("ENOSYS", "Invalid system call number"),
    ("ENOTEMPTY", "Directory not empty"),
    ("ELOOP", "Too many symbolic links encountered"),
    ("EWOULDBLOCK", "Operation would block"), // 41 is unused; see `name`
    ("ENOMSG", "No message of desired type"),
    ("EIDRM", "Identifier removed"),
    ("ECHRNG", "Channel number out of range"),
    ("EL2NSYNC", "Level 2 not synchronized"),
    ("EL3HLT", "Level 3 halted"),
    ("EL3RST", "Level 3 reset"),
    ("ELNRNG", "Link number out of range"),
    ("EUNATCH", "Protocol driver not attached"),
    ("ENOCSI", "No CSI structure available"),
    ("EL2HLT", "Level 2 halted"),
    ("EBADE", "Invalid exchange"),
    ("EBADR", "Invalid request descriptor"),
    ("EXFULL", "Exchange full"),
    ("ENOANO", "No anode"),
    ("EBADRQC", "Invalid request code"),
    ("EBADSLT", "Invalid slot"),
    ("EDEADLOCK", "Resource deadlock would occur"), // 58 is unused; see `name`
    ("EBFONT", "Bad font file format"),
    ("ENOSTR", "Device not a stream"),
    ("ENODATA", "No data available"),
    ("ETIME", "Timer expired"),
    ("ENOSR", "Out of streams resources"),
    ("ENONET", "Machine is not on the network"),
    ("ENOPKG", "Package not installed"),
    ("EREMOTE", "Object is remote"),
    ("ENOLINK", "Link has been severed"),
    ("EADV", "Advertise error"),
    ("ESRMNT", "Srmount error"),
    ("ECOMM", "Communication error on send"),
    ("EPROTO", "Protocol error"),
    ("EMULTIHOP", "Multihop attempted"),
    ("EDOTDOT", "RFS specific error"),
    ("EBADMSG", "Not a data message"),
    ("EOVERFLOW", "Value too large for defined data type"),
    ("ENOTUNIQ", "Name not unique on network"),
    ("EBADFD", "File descriptor in bad state"),
    ("EREMCHG", "Remote address changed"),
    ("ELIBACC", "Can not access a needed shared library"),
    ("ELIBBAD", "Accessing a corrupted shared library"),
    ("ELIBSCN", ".lib section in a.out corrupted"),
    ("ELIBMAX", "Attempting to link in too many shared libraries"),
    ("ELIBEXEC", "Cannot exec a shared library directly"),
    ("EILSEQ", "Illegal byte sequence"),
    ("ERESTART", "Interrupted system call should be restarted"),
    ("ESTRPIPE", "Streams pipe error"),
    ("EUSERS", "Too many users"),
    ("ENOTSOCK", "Socket operation on non-socket"),
    ("EDESTADDRREQ", "Destination address required"),
    ("EMSGSIZE", "Message too long"),
    ("EPROTOTYPE", "Protocol wrong type for socket"),
    ("ENOPROTOOPT", "Protocol not available"),
    ("EPROTONOSUPPORT", "Protocol not supported"),
    ("ESOCKTNOSUPPORT", "Socket type not supported"),
    (
        "EOPNOTSUPP",
        "Operation not supported on transport endpoint",
    ),
    ("EPFNOSUPPORT", "Protocol family not supported"),
    ("EAFNOSUPPORT", "Address family not supported by protocol"),
    ("EADDRINUSE", "Address already in use"),
    ("EADDRNOTAVAIL", "Cannot assign requested address"),
    ("ENETDOWN", "Network is down"),
    ("ENETUNREACH", "Network is unreachable"),
    ("ENETRESET", "Network dropped connection because of reset"),
    ("ECONNABORTED", "Software caused connection abort"),
    ("ECONNRESET", "Connection reset by peer"),
    ("ENOBUFS", "No buffer space available"),
    ("EISCONN", "Transport endpoint is already connected"),
    ("ENOTCONN", "Transport endpoint is not connected"),
    ("ESHUTDOWN", "Cannot send after transport endpoint shutdown"),
    ("ETOOMANYREFS", "Too many references: cannot splice"),
    ("ETIMEDOUT", "Connection timed out"),
    ("ECONNREFUSED", "Connection refused"),
    ("EHOSTDOWN", "Host is down"),
    ("EHOSTUNREACH", "No route to host"),
    ("EALREADY", "Operation already in progress"),
    ("EINPROGRESS", "Operation now in progress"),
    ("ESTALE", "Stale file handle"),
    ("EUCLEAN", "Structure needs cleaning"),
    ("ENOTNAM", "Not a XENIX named type file"),
    ("ENAVAIL", "No XENIX semaphores available"),
    ("EISNAM", "Is a named type file"),
    ("EREMOTEIO", "Remote I/O error"),
    ("EDQUOT", "Quota exceeded"),
    ("ENOMEDIUM", "No medium found"),
    ("EMEDIUMTYPE", "Wrong medium type"),
    ("ECANCELED", "Operation Canceled"),
    ("ENOKEY", "Required key not available"),
    ("EKEYEXPIRED", "Key has expired"),
    ("EKEYREVOKED", "Key has been revoked"),
    ("EKEYREJECTED", "Key was rejected by service"),
    ("EOWNERDEAD", "Owner died"),
    ("ENOTRECOVERABLE", "State not recoverable"),
    ("ERFKILL", "Operation not possible due to RF-kill"),
    ("EHWPOISON", "Memory page has hardware error"),
];

/// Kernel-internal codes that can leak to a tracer (a restarted call): `include/linux/errno.h`.
const INTERNAL: [(i64, &str, &str); 4] = [
    (512, "ERESTARTSYS", "Restart system call (kernel-internal)"),
    (
        513,
        "ERESTARTNOINTR",
        "Restart system call (kernel-internal)",
    ),
    (
        514,
        "ERESTARTNOHAND",
        "Restart if no handler (kernel-internal)",
    ),
    (
        516,
        "ERESTART_RESTARTBLOCK",
        "Restart via restart_syscall (kernel-internal)",
    ),
];

/// The largest errno a system call returns negated: results in `-4095..=-1` are errors.
pub const MAX_ERRNO: i64 = 4095;

/// The errno of a system call result, if it is an error (`-4095..=-1`).
pub fn of_ret(ret: i64) -> Option<i64> {
    (-MAX_ERRNO..0).contains(&ret).then_some(-ret)
}

fn entry(errno: i64) -> Option<(&'static str, &'static str)> {
    match errno {
        // 41 and 58 have no code of their own; EWOULDBLOCK/EDEADLOCK alias 11/35.
        41 | 58 => None,
        1..=133 => Some(ERRNOS[(errno - 1) as usize]),
        _ => INTERNAL
            .iter()
            .find(|(n, _, _)| *n == errno)
            .map(|(_, a, b)| (*a, *b)),
    }
}

/// `ENOENT` for 2; `E<n>` for numbers without a name.
pub fn name(errno: i64) -> String {
    entry(errno).map_or_else(|| format!("E{errno}"), |(n, _)| n.to_string())
}

/// `No such file or directory` for 2, when known.
pub fn description(errno: i64) -> Option<&'static str> {
    entry(errno).map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_generic_table() {
        assert_eq!(name(1), "EPERM");
        assert_eq!(name(2), "ENOENT");
        assert_eq!(name(13), "EACCES");
        assert_eq!(name(38), "ENOSYS");
        assert_eq!(name(40), "ELOOP");
        assert_eq!(name(42), "ENOMSG");
        assert_eq!(name(59), "EBFONT");
        assert_eq!(name(95), "EOPNOTSUPP");
        assert_eq!(name(110), "ETIMEDOUT");
        assert_eq!(name(125), "ECANCELED");
        assert_eq!(name(133), "EHWPOISON");
        assert_eq!(name(41), "E41");
        assert_eq!(name(512), "ERESTARTSYS");
        assert_eq!(description(2), Some("No such file or directory"));
    }

    #[test]
    fn only_small_negative_results_are_errors() {
        assert_eq!(of_ret(-2), Some(2));
        assert_eq!(of_ret(-4095), Some(4095));
        assert_eq!(of_ret(-4096), None);
        assert_eq!(of_ret(0), None);
        assert_eq!(of_ret(3), None);
    }
}
