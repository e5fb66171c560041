//! `trusted_proxies`: the peers whose forwarding headers and PROXY protocol headers are
//! believed. Written inline as networks, or as the name of an `intel.lists` entry, so a CDN's
//! published ranges come from a file (or a URL `intel update` refreshes) and reload with it.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::identity::Cidr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxy {
    Net(Cidr),
    /// `{ list: NAME }`: every network of that list.
    List(String),
}

impl<'de> serde::Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Expected)
    }
}

struct Expected;

impl<'de> Visitor<'de> for Expected {
    type Value = TrustedProxy;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a network such as \"10.0.0.0/8\", or { list: NAME } naming an intel.lists entry",
        )
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<TrustedProxy, E> {
        s.parse().map(TrustedProxy::Net).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TrustedProxy, A::Error> {
        let mut list = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "list" if list.is_none() => list = Some(map.next_value::<String>()?),
                "list" => return Err(de::Error::duplicate_field("list")),
                other => return Err(de::Error::unknown_field(other, &["list"])),
            }
        }
        list.map(TrustedProxy::List)
            .ok_or_else(|| de::Error::missing_field("list"))
    }
}
