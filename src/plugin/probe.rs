//! `probe=` diagnostics: read one guest string at every system call instruction and
//! report how many reads agreed, proving that guest-memory reads work and stay stable.

use parking_lot::Mutex;

use crate::mem::GuestMemory;
use crate::output::records::{ProbeReport, hex};

/// Longest string read.
const MAX: usize = 256;

/// The probe's address and what it saw so far.
#[derive(Debug)]
pub struct Probe {
    address: u64,
    state: Mutex<(Option<Vec<u8>>, ProbeReport)>,
}

impl Probe {
    /// A probe of the string at `address`.
    pub fn new(address: u64) -> Probe {
        Probe {
            address,
            state: Mutex::new((
                None,
                ProbeReport {
                    address: hex(address),
                    ..ProbeReport::default()
                },
            )),
        }
    }

    /// Reads the string once more through `mem`.
    pub fn read(&self, mem: &dyn GuestMemory) {
        let read = mem.read_cstr(self.address, MAX);
        let mut guard = self.state.lock();
        let (first, report) = &mut *guard;
        report.reads += 1;
        match read {
            Err(_) => report.failed += 1,
            Ok((bytes, _)) => match first {
                None => {
                    report.text = Some(String::from_utf8_lossy(&bytes).into_owned());
                    report.matched += 1;
                    *first = Some(bytes);
                }
                Some(f) if *f == bytes => report.matched += 1,
                Some(_) => report.mismatched += 1,
            },
        }
    }

    /// The report so far.
    pub fn report(&self) -> ProbeReport {
        self.state.lock().1.clone()
    }
}
