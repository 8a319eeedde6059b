//! The production `Connector`: FTPS connections to the configured server, sharing one TLS
//! context (and what is learned of the server) among them.

use std::sync::Arc;

use super::Ftps;
use super::tls::TlsContext;
use crate::config::Server;
use crate::error::Result;
use crate::remote::learned::{Keep, Learned};
use crate::remote::limit::RateLimiter;
use crate::remote::{Connector, Remote};

/// Makes FTPS connections to the configured server: the production `Connector`.
pub struct FtpsConnector {
    server: Server,
    tls: TlsContext,
}

impl FtpsConnector {
    /// A connector for `server`, sharing `tls` (and what it learns of the server) with every
    /// connection it makes.
    pub fn shared(server: &Server, tls: &TlsContext) -> Arc<dyn Connector> {
        Arc::new(FtpsConnector {
            server: server.clone(),
            tls: tls.clone(),
        })
    }

    /// A connector with its own TLS context, built from the config.
    pub fn for_server(server: &Server) -> Result<Arc<dyn Connector>> {
        Ok(Self::shared(server, &TlsContext::new(server)?))
    }

    /// A connector that starts from what earlier runs learned of the server (`remembered`)
    /// and hands what this one learns to `keep` (`engine::learned::memory` gives both).
    pub fn remembering(
        server: &Server,
        (remembered, keep): (Option<Learned>, Option<Keep>),
    ) -> Result<Arc<dyn Connector>> {
        Ok(Self::shared(
            server,
            &TlsContext::remembering(server, remembered, keep)?,
        ))
    }
}

#[async_trait::async_trait]
impl Connector for FtpsConnector {
    async fn connect(&self, limiter: Option<Arc<RateLimiter>>) -> Result<Box<dyn Remote>> {
        let mut conn = Ftps::connect(&self.server, &self.tls).await?;
        conn.set_limiter(limiter);
        Ok(Box::new(conn))
    }
}
