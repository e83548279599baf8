//! A record packed into bytes for its trip from a vCPU to the log's writer thread.
//!
//! Every byte a vCPU hands over is written on its CPU and read on the writer's, which
//! costs a cache-line transfer per 64 bytes; a system call record in memory is a few
//! hundred bytes, mostly room for what a call may have (six arguments, a buffer's first
//! bytes), while packed it is what the call has: about 40 bytes for `getppid`.

/// A record type that can travel packed: [`Packed::pack`] on the vCPU,
/// [`Packed::unpack`] on the writer, which then encodes it as JSON.
pub trait Packed: Sized {
    /// Appends the record's bytes to `out`.
    fn pack(&self, out: &mut Vec<u8>);

    /// Takes one record's bytes off the front of `input`. `None` only if they were not
    /// made by [`Packed::pack`] (a bug): the rest of the batch cannot be read then.
    fn unpack(input: &mut Unpack<'_>) -> Option<Self>;
}

/// Appends little-endian values to a packing buffer.
pub trait Put {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// Four bytes.
    fn put_u32(&mut self, v: u32);
    /// Eight bytes.
    fn put_u64(&mut self, v: u64);
    /// A length (four bytes) and the bytes.
    fn put_bytes(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_bytes(&mut self, bytes: &[u8]) {
        self.put_u32(bytes.len() as u32);
        self.extend_from_slice(bytes);
    }
}

/// Reads back what [`Put`] wrote; every read is `None` past the end.
#[derive(Debug)]
pub struct Unpack<'a>(pub &'a [u8]);

impl<'a> Unpack<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    /// Four bytes.
    pub fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    /// Eight bytes.
    pub fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    /// A length and that many bytes.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_in_order_and_short_input_is_none() {
        let mut out = Vec::new();
        out.put_u8(7);
        out.put_u32(0xdead_beef);
        out.put_u64(u64::MAX - 1);
        out.put_bytes(b"abc");
        let mut input = Unpack(&out);
        assert_eq!(input.u8(), Some(7));
        assert_eq!(input.u32(), Some(0xdead_beef));
        assert_eq!(input.u64(), Some(u64::MAX - 1));
        assert_eq!(input.bytes(), Some(&b"abc"[..]));
        assert!(input.is_empty());
        assert_eq!(input.u8(), None);
        let mut short = Unpack(&out[..3]);
        assert_eq!(short.u8(), Some(7));
        assert_eq!(short.u32(), None);
    }
}
