//! The remote side: FTPS adapter and listing parsers. Nothing outside this module names a
//! suppaftp type.

pub mod ftps;
pub mod listing;
pub mod tls;
