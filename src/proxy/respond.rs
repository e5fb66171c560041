//! Responses flowgate writes itself: `respond` pages, redirects and upstream error pages.

use std::borrow::Cow;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

pub struct Local {
    pub status: u16,
    content_type: Cow<'static, str>,
    location: Option<String>,
    body: Bytes,
}

impl Local {
    pub fn page(status: u16, content_type: &str, body: Bytes) -> Local {
        Local {
            status,
            content_type: Cow::Owned(content_type.to_string()),
            location: None,
            body,
        }
    }

    pub fn redirect(status: u16, location: String) -> Local {
        Local {
            status,
            content_type: Cow::Borrowed("text/plain; charset=utf-8"),
            location: Some(location),
            body: Bytes::new(),
        }
    }

    pub fn error_page(status: u16) -> Local {
        let body: &'static [u8] = match status {
            502 => b"<!doctype html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1><p>The page is unavailable right now. Please try again shortly.</p>\n",
            504 => b"<!doctype html><title>504 Gateway Timeout</title><h1>504 Gateway Timeout</h1><p>The page took too long to answer. Please try again shortly.</p>\n",
            _ => b"<!doctype html><title>Error</title><h1>Something went wrong</h1>\n",
        };
        Local {
            status,
            content_type: Cow::Borrowed("text/html; charset=utf-8"),
            location: None,
            body: Bytes::from_static(body),
        }
    }

    pub async fn write(self, session: &mut Session) -> Result<()> {
        let mut header = ResponseHeader::build(self.status, Some(4))?;
        header.insert_header("content-type", &*self.content_type)?;
        header.insert_header("content-length", self.body.len().to_string())?;
        // Decisions differ per visitor: no shared cache may keep one.
        header.insert_header("cache-control", "private, no-store")?;
        if let Some(location) = self.location {
            header.insert_header("location", location)?;
        }
        let empty = self.body.is_empty();
        session
            .write_response_header(Box::new(header), empty)
            .await?;
        if !empty {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}
