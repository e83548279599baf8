//! Tests of the system call tables, ABI, decoding, hooks and matcher.
