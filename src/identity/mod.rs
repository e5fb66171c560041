//! Who the visitor is: address, geography, network, list membership and user agent class.
//! Everything here is compiled at snapshot build and only read per request.

pub mod cidr;
pub mod client_ip;
pub mod geo;
pub mod ua;

use std::net::IpAddr;

use crate::config::IntelConfig;
use crate::problem::Problems;

pub use cidr::{Cidr, CidrSet};
pub use client_ip::{client_ip, ClientIpHeader};
pub use geo::{Anonymous, CountryCode, Mmdb};
pub use ua::{Device, UaClassifier};

/// The most IP lists a config may name (membership is a 64-bit mask).
pub const MAX_LISTS: usize = 64;

/// Facts about one visitor, computed once per request.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub ip: IpAddr,
    pub country: Option<CountryCode>,
    pub asn: Option<u32>,
    pub as_org: Option<Box<str>>,
    /// Bit i set: the address is in list i of the snapshot's `Intel::lists`.
    pub ip_lists: u64,
    pub anonymous: Anonymous,
    pub bot: bool,
    pub device: Device,
}

/// A named list of networks from `intel.lists`.
pub struct IpList {
    pub name: String,
    pub set: CidrSet,
}

/// All visitor intelligence of one snapshot.
#[derive(Default)]
pub struct Intel {
    pub country: Option<Mmdb>,
    pub city: Option<Mmdb>,
    pub asn: Option<Mmdb>,
    pub anonymous: Option<Mmdb>,
    pub lists: Vec<IpList>,
    pub ua: UaClassifier,
}

impl Intel {
    /// Loads every configured database and list; each unreadable or corrupt file is a problem.
    pub fn load(cfg: &IntelConfig, problems: &mut Problems) -> Intel {
        let open = |p: &Option<std::path::PathBuf>, problems: &mut Problems| {
            p.as_deref().and_then(|p| Mmdb::open(p, problems))
        };
        let lists = cfg
            .lists
            .iter()
            // A list that fails to load keeps its name (and index), so rules naming it are
            // checked against the config rather than reported twice.
            .map(|(name, path)| IpList {
                name: name.clone(),
                set: CidrSet::load(path, problems).unwrap_or_default(),
            })
            .collect();
        Intel {
            country: open(&cfg.country, problems),
            city: open(&cfg.city, problems),
            asn: open(&cfg.asn, problems),
            anonymous: open(&cfg.anonymous, problems),
            lists,
            ua: UaClassifier::new(),
        }
    }

    pub fn list_index(&self, name: &str) -> Option<usize> {
        self.lists.iter().position(|l| l.name == name)
    }

    /// Names of the lists in a membership mask.
    pub fn list_names(&self, mask: u64) -> impl Iterator<Item = &str> {
        self.lists
            .iter()
            .enumerate()
            .filter(move |(i, _)| mask & (1 << i) != 0)
            .map(|(_, l)| l.name.as_str())
    }

    pub fn visitor(&self, ip: IpAddr, ua: Option<&str>) -> Visitor {
        let country = self
            .country
            .as_ref()
            .or(self.city.as_ref())
            .and_then(|db| db.country(ip));
        let (asn, as_org) = match &self.asn {
            Some(db) => {
                let (n, org) = db.asn(ip);
                (n, org.map(Box::from))
            }
            None => (None, None),
        };
        let ip_lists = self
            .lists
            .iter()
            .enumerate()
            .filter(|(_, l)| l.set.contains(ip))
            .fold(0u64, |m, (i, _)| m | (1 << i));
        let anonymous = self
            .anonymous
            .as_ref()
            .map(|db| db.anonymous(ip))
            .unwrap_or_default();
        let (bot, device) = self.ua.classify(ua);
        Visitor {
            ip,
            country,
            asn,
            as_org,
            ip_lists,
            anonymous,
            bot,
            device,
        }
    }
}
