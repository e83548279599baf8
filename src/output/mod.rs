//! What the plugin reports: typed records ([`records`]) and the JSON Lines file they go
//! to ([`jsonl`]). Field names are a contract with users' scripts: add, never rename.

pub mod jsonl;
pub mod pack;
pub mod records;

pub use jsonl::JsonlSink;
pub use pack::Packed;
pub use records::Record;
