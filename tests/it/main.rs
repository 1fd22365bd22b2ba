//! Integration tests: one binary, one module per boundary.

mod api_drift;
mod capture;
mod cli;
mod config_errors;
mod contract;
mod delivery;
mod end_to_end;
mod fanout;
mod faults;
mod golden;
mod graph_hostile;
mod hashtag_paging;
mod history;
mod lambda;
mod ops;
mod release_profile;
mod retry_table;
mod s3_proxy;
mod simulation;
mod streaming;
mod support;
mod validation;
