//! The integration suite: one binary. Engine tests run against a real FTPS server (the
//! embedded libunftp server, one per test, random port, throwaway certificate).

mod cli;
#[cfg(feature = "failpoints")]
mod crash;
mod docs;
mod engine;
mod faults;
mod interop;
mod layout;
mod local_faults;
mod moves;
mod packaging;
mod resume;
mod scenarios;
mod service;
mod sim;
mod store;
mod support;
mod tls;
mod ux;
