//! Flows: the table of bidirectional conversations, TCP state, per-flow inspection, and the
//! owned records that leave the pipeline.
pub mod app;
pub mod record;
pub mod table;
pub mod tcp;

pub use record::FlowRecord;
pub use table::{FlowConfig, FlowKey, FlowStats, FlowTable};
