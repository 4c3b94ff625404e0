//! End-to-end tests of the dg-audit binary (one test binary, modules per area).

mod util;

mod architecture;
mod bad_input;
mod cli;
mod corpus;
mod deploy;
mod evasion;
mod fuzz;
mod hostile;
mod live;
mod loss;
mod report;
mod scenarios;
mod zeek_semantics;
