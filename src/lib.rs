//! dg-audit: verify, from packets, that self-hosted Deepgram licensing traffic is what Deepgram
//! documents. The pipeline is `source -> decode -> flow -> inspect -> audit -> report`.

pub mod audit;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod inspect;
pub mod live;
pub mod names;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod source;
pub mod units;
