//! Reports: turning owned records into text for people and JSON/NDJSON/Zeek TSV for machines.
//! Every string that could carry a secret passes through redaction before it is written.

pub mod audit;
pub mod flows;
pub mod html;
pub mod merge;
pub mod render;
