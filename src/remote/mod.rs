//! The remote side: FTPS adapter and listing parsers. Nothing outside this module names a
//! suppaftp type.

pub mod features;
pub mod ftps;
pub mod limit;
pub mod listing;
pub mod pool;
pub mod tls;
