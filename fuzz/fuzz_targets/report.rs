//! Event logs as `vmi report` reads them (lines, records, the summary, the trace).
#![cfg_attr(feature = "libfuzzer", no_main)]
use vmi::report::{analyse, perfetto::TraceWriter, reader::Warnings, summary::Limits};
use vmi_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut warnings = Warnings::new(4, false);
    let mut trace = TraceWriter::new(Vec::new());
    let _ = analyse(
        data,
        "fuzz",
        Limits::default(),
        &mut warnings,
        trace.as_mut().ok(),
    );
});
