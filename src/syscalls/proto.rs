//! PANDA syscalls2 prototype files: the line parser and the argument classifier.
//!
//! This file is compiled twice: by `build.rs` (through `#[path]`, to generate the tables)
//! and as `vmi::syscalls::proto` (so tests and tools parse exactly as the build does). It
//! therefore uses `std` only.
//!
//! Format, one system call per line (blank lines and lines starting with `#` or `//` are
//! skipped):
//!
//! ```text
//! <nr> <return type> <function>(<type> <name>, <type>, ...);
//! 257 long sys_openat(int dfd, const char __user *filename, int flags, umode_t mode);
//! 9 long sys_mmap(unsigned long, unsigned long, unsigned long, unsigned long, unsigned long, unsigned long);
//! ```
//!
//! Parameters may be unnamed (PANDA's files have many); they get the name `argN`.

use std::fmt;

/// How an argument's raw register value is interpreted. See [`classify`] for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// An unsigned integer (flags, sizes, modes, `unsigned long` addresses of ranges).
    Int,
    /// A signed integer (`int`, `long`, `pid_t`, `loff_t`, ...).
    Signed,
    /// A pointer to something not decoded further (`int *`, `sigset_t *`, `void *`).
    Pointer,
    /// A NUL-terminated string (`const char *filename`).
    CStr,
    /// An array of string pointers ending in NULL (`execve`'s `argv`, `envp`).
    CStrArray,
    /// A byte buffer whose length is argument number `len_arg` (`read`'s `buf`).
    Buffer {
        /// Index of the length argument.
        len_arg: u8,
    },
    /// A pointer to a `struct` or `union`.
    StructPtr,
    /// A file descriptor (`int fd`, `unsigned int dfd`, ...). Decoded as signed, so that
    /// `AT_FDCWD` reads as -100.
    Fd,
}

impl ArgKind {
    /// Whether the decoded value is signed (`Signed` and `Fd`).
    pub fn is_signed(self) -> bool {
        matches!(self, ArgKind::Signed | ArgKind::Fd)
    }
}

/// One parameter of a prototype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoArg {
    /// The C type, whitespace-normalised: `const char __user *`.
    pub ctype: String,
    /// The parameter name, or `argN` when the prototype leaves it unnamed.
    pub name: String,
    /// Whether the prototype named the parameter.
    pub named: bool,
}

/// One line of a prototype file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proto {
    /// The system call number.
    pub nr: u32,
    /// The return type (`long`).
    pub ret: String,
    /// The kernel function, `sys_openat`.
    pub func: String,
    /// The parameters, in order.
    pub args: Vec<ProtoArg>,
}

impl Proto {
    /// The function name without its `sys_` prefix: what records and hooks call it.
    pub fn name(&self) -> &str {
        self.func.strip_prefix("sys_").unwrap_or(&self.func)
    }
}

/// A malformed line: its 1-based number and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// Words that make up C types; a parameter whose last word is one of these is unnamed.
const TYPE_WORDS: &[&str] = &[
    "int",
    "long",
    "short",
    "char",
    "unsigned",
    "signed",
    "void",
    "const",
    "__user",
    "size_t",
    "u8",
    "u16",
    "u32",
    "u64",
    "__u32",
    "__u64",
    "s32",
    "s64",
    "umode_t",
    "pid_t",
    "loff_t",
    "off_t",
    "uid_t",
    "gid_t",
    "key_t",
    "timer_t",
    "clockid_t",
    "qid_t",
    "mqd_t",
];

/// Parses a whole prototype file.
pub fn parse_file(text: &str) -> Result<Vec<Proto>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
            continue;
        }
        out.push(parse_line(t).map_err(|msg| ParseError { line: i + 1, msg })?);
    }
    Ok(out)
}

/// Parses one non-comment line.
pub fn parse_line(line: &str) -> Result<Proto, String> {
    let (nr, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("expected `<nr> <type> <name>(<args>);`")?;
    let nr: u32 = nr
        .parse()
        .map_err(|_| format!("bad system call number {nr:?}"))?;
    let rest = rest.trim();
    let body = rest
        .strip_suffix(';')
        .ok_or("missing `;` at end of line")?
        .trim_end();
    let open = body.find('(').ok_or("missing `(`")?;
    let inner = body[open + 1..]
        .strip_suffix(')')
        .ok_or("missing `)` before `;`")?;
    if inner.contains('(') || inner.contains(')') {
        return Err("nested parentheses in the parameter list".into());
    }
    let head: Vec<&str> = body[..open].split_whitespace().collect();
    let (func, ret) = head.split_last().ok_or("missing function name")?;
    if ret.is_empty() {
        return Err("missing return type".into());
    }
    if !is_ident(func) {
        return Err(format!("bad function name {func:?}"));
    }
    let inner = inner.trim();
    let mut args = Vec::new();
    if !(inner.is_empty() || inner == "void") {
        for (i, p) in inner.split(',').enumerate() {
            args.push(parse_param(p, i).map_err(|e| format!("parameter {}: {e}", i + 1))?);
        }
    }
    if args.len() > 6 {
        return Err(format!(
            "{} parameters; system calls take at most 6",
            args.len()
        ));
    }
    Ok(Proto {
        nr,
        ret: ret.join(" "),
        func: func.to_string(),
        args,
    })
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

fn parse_param(p: &str, index: usize) -> Result<ProtoArg, String> {
    // Normalise: one space between words, `*` attached to the left of what follows.
    let spaced = p.replace('*', " * ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let (last, init) = words.split_last().ok_or("empty parameter")?;
    for w in &words {
        if *w != "*" && !is_ident(w) {
            return Err(format!("unexpected {w:?} in {:?}", p.trim()));
        }
    }
    let named = *last != "*" && !TYPE_WORDS.contains(last) && !init.is_empty();
    let type_words = if named { init } else { &words[..] };
    let mut ctype = String::new();
    for w in type_words {
        if *w == "*" {
            if !ctype.ends_with('*') {
                ctype.push(' ');
            }
            ctype.push('*');
        } else {
            if !ctype.is_empty() {
                ctype.push(' ');
            }
            ctype.push_str(w);
        }
    }
    Ok(ProtoArg {
        ctype,
        name: if named {
            last.to_string()
        } else {
            format!("arg{index}")
        },
        named,
    })
}

/// Names of length parameters that give the size of a preceding buffer.
const LEN_NAMES: &[&str] = &[
    "count", "len", "size", "bufsiz", "bufsize", "buflen", "nbytes", "length", "plen", "sz",
    "buf_len", "usize", "ulen", "data_len", "optlen",
];

/// Parameter names that hold file descriptors, besides `fd` and names ending in `fd`/`dfd`.
const FD_NAMES: &[&str] = &[
    "fd_in", "fd_out", "mqdes", "fildes", "fdin", "fdout", "fd_user",
];

/// Size in bits of an integer C type, or `None` for word-sized (`long`, `size_t`, ...).
fn int_bits(base: &str) -> Option<u8> {
    Some(match base {
        "u8" | "__u8" | "unsigned char" | "char" | "signed char" => 8,
        "u16" | "__u16" | "short" | "unsigned short" | "umode_t" | "old_uid_t" | "old_gid_t"
        | "old_sigset_t16" => 16,
        "int" | "unsigned int" | "unsigned" | "signed int" | "u32" | "__u32" | "s32" | "__s32"
        | "pid_t" | "uid_t" | "gid_t" | "key_t" | "mqd_t" | "clockid_t" | "timer_t" | "qid_t"
        | "key_serial_t" | "rwf_t" | "__kernel_rwf_t" | "old_time32_t" | "compat_uint_t"
        | "compat_int_t" | "old_sigset_t" => 32,
        "u64" | "__u64" | "s64" | "__s64" | "loff_t" | "long long" | "unsigned long long" => 64,
        _ => return None,
    })
}

/// Whether an integer C type is signed.
fn int_signed(base: &str) -> bool {
    matches!(
        base,
        "int"
            | "signed int"
            | "long"
            | "signed long"
            | "long long"
            | "short"
            | "signed char"
            | "s32"
            | "__s32"
            | "s64"
            | "__s64"
            | "pid_t"
            | "key_t"
            | "mqd_t"
            | "clockid_t"
            | "timer_t"
            | "key_serial_t"
            | "rwf_t"
            | "__kernel_rwf_t"
            | "old_time32_t"
            | "loff_t"
            | "off_t"
            | "ssize_t"
            | "time_t"
            | "__kernel_old_time_t"
            | "compat_int_t"
    )
}

/// Pointer typedefs that hide their `*`.
const POINTER_TYPEDEFS: &[&str] = &["cap_user_header_t", "cap_user_data_t"];

/// The C type without qualifiers and annotations: `const char __user *` → `char *`.
fn base_type(ctype: &str) -> String {
    ctype
        .split_whitespace()
        .filter(|w| {
            !matches!(
                *w,
                "const" | "__user" | "volatile" | "__force" | "struct" | "union"
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Classifies every parameter of a prototype, and gives each its width in bits on a
/// kernel whose registers are `word_bits` wide (a `u64` on i386 arrives in one 32-bit
/// register: the kernel's wrappers take one register per parameter, see
/// `arch/x86/include/asm/syscall_wrapper.h`). Rules, first match wins:
///
/// 1. A pointer (`*` in the type, or a pointer typedef such as `cap_user_header_t`):
///    - `char **` (any qualifiers) → [`ArgKind::CStrArray`] (`execve`'s `argv`);
///    - a single pointer to `char`/`void`/`u8`/`unsigned char` followed by an integer
///      parameter named like a length (`count`, `len`, `size`, `*len`, `*size`, ...) →
///      [`ArgKind::Buffer`], unless it is a `const char *` whose name is not buffer-like
///      (`buf`, `ubuf`, `buffer`, `value`, ...): those are strings (`setxattr`'s `name`);
///    - a single pointer to `char` (const or not) not named like a buffer → [`ArgKind::CStr`]
///      (`mount`'s `char *dev_name`; but `getsockopt`'s `char *optval` is a pointer);
///    - `struct X *` / `union X *` / the pointer typedefs → [`ArgKind::StructPtr`];
///    - anything else → [`ArgKind::Pointer`].
/// 2. An integer whose name is `fd`, ends in `fd` (`dfd`, `oldfd`, `epfd`, `pidfd`), or is
///    listed in `FD_NAMES` (`fd_in`, `mqdes`) → [`ArgKind::Fd`].
/// 3. A signed integer type (`int`, `long`, `pid_t`, `loff_t`, ...) → [`ArgKind::Signed`].
/// 4. Anything else → [`ArgKind::Int`].
pub fn classify(args: &[ProtoArg], word_bits: u8) -> Vec<(ArgKind, u8)> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            let kind = classify_one(args, i);
            let bits = match kind {
                ArgKind::Int | ArgKind::Signed | ArgKind::Fd => {
                    int_bits(&base_type(&a.ctype)).map_or(word_bits, |b| b.min(word_bits))
                }
                _ => word_bits,
            };
            (kind, bits)
        })
        .collect()
}

fn is_len_name(name: &str) -> bool {
    LEN_NAMES.contains(&name) || name.ends_with("len") || name.ends_with("size")
}

fn classify_one(args: &[ProtoArg], i: usize) -> ArgKind {
    let a = &args[i];
    let base = base_type(&a.ctype);
    let stars = base.matches('*').count();
    if stars > 0 || POINTER_TYPEDEFS.contains(&base.as_str()) {
        let pointee = base.trim_end_matches(['*', ' ']);
        if stars >= 2 && pointee == "char" {
            return ArgKind::CStrArray;
        }
        if stars == 1 && matches!(pointee, "char" | "void" | "u8" | "__u8" | "unsigned char") {
            let is_const = a.ctype.split_whitespace().next() == Some("const");
            let named_like_buffer = matches!(
                a.name.as_str(),
                "buf"
                    | "ubuf"
                    | "buff"
                    | "buffer"
                    | "value"
                    | "data"
                    | "payload"
                    | "_payload"
                    | "optval"
            );
            let buffer_like = named_like_buffer || pointee != "char" || !is_const;
            let len = args
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(_, b)| b.named && !b.ctype.contains('*') && is_len_name(&b.name));
            if let Some((j, _)) = len
                && buffer_like
            {
                return ArgKind::Buffer { len_arg: j as u8 };
            }
            if pointee == "char" && !named_like_buffer {
                return ArgKind::CStr;
            }
        }
        let is_struct = a
            .ctype
            .split_whitespace()
            .any(|w| w == "struct" || w == "union");
        if is_struct || POINTER_TYPEDEFS.contains(&base.as_str()) {
            return ArgKind::StructPtr;
        }
        return ArgKind::Pointer;
    }
    if a.named
        && (a.name == "fd"
            || a.name.ends_with("fd") && !a.name.ends_with("nfd")
            || FD_NAMES.contains(&a.name.as_str()))
    {
        return ArgKind::Fd;
    }
    if int_signed(&base) {
        ArgKind::Signed
    } else {
        ArgKind::Int
    }
}
