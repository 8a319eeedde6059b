//! The remote side: FTPS adapter and listing parsers. Nothing outside this module names a
//! suppaftp type.

pub mod listing;
