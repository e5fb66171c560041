//! MaxMind DB readers: country, ASN and anonymous-IP facts for an address.
//! Lookups decode only the fields asked for, borrowing strings from the database.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{path, Reader};

use crate::problem::{Problems, Span};

/// An ISO 3166-1 alpha-2 code, stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts two ASCII letters in either case.
    pub fn parse(s: &str) -> Option<CountryCode> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// Position in a 26×26 table, for bitsets.
    pub fn index(self) -> usize {
        (self.0[0] - b'A') as usize * 26 + (self.0[1] - b'A') as usize
    }

    /// Whether ISO 3166-1 assigns this code (plus XK, which MaxMind uses for Kosovo).
    pub fn is_assigned(self) -> bool {
        super::countries::is_assigned(&self.0)
    }
}

/// Anonymous-IP flags as bits (MaxMind's Anonymous-IP database, later also named lists).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anonymous(pub u8);

impl Anonymous {
    pub const NAMES: [&'static str; 5] = ["vpn", "tor", "proxy", "hosting", "residential"];

    /// The flag for one of `NAMES` (none for anything else).
    pub fn from_name(name: &str) -> Anonymous {
        Anonymous(
            Self::NAMES
                .iter()
                .position(|n| *n == name)
                .map_or(0, |i| 1 << i),
        )
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

#[derive(serde::Deserialize)]
struct AnonymousRecord {
    is_anonymous_vpn: Option<bool>,
    is_tor_exit_node: Option<bool>,
    is_public_proxy: Option<bool>,
    is_hosting_provider: Option<bool>,
    is_residential_proxy: Option<bool>,
}

/// One opened `.mmdb` file.
pub struct Mmdb {
    pub path: PathBuf,
    reader: Reader<Vec<u8>>,
}

/// Why a database was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum MmdbError {
    #[error("cannot read {}: {}", path.display(), crate::problem::io_reason(source))]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid MaxMind database: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
}

impl MmdbError {
    /// The message without the file's name, for a problem already located at the file.
    fn reason(&self) -> String {
        match self {
            MmdbError::Unreadable { source, .. } => {
                format!("cannot read: {}", crate::problem::io_reason(source))
            }
            MmdbError::Invalid { source, .. } => format!("not a valid MaxMind database: {source}"),
        }
    }
}

impl Mmdb {
    /// Opens and fully verifies the database, so corruption is found at load, not per request.
    pub fn load(path: &Path) -> Result<Mmdb, MmdbError> {
        let bytes = std::fs::read(path).map_err(|source| MmdbError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |source| MmdbError::Invalid {
            path: path.to_path_buf(),
            source,
        };
        super::mmdb_check::verify(&bytes).map_err(invalid)?;
        let reader = Reader::from_source(bytes).map_err(invalid)?;
        Ok(Mmdb {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// `load`, its failure a problem of the database file itself.
    pub fn open(path: &Path, problems: &mut Problems) -> Option<Mmdb> {
        Mmdb::load(path)
            .map_err(|e| problems.push(path, Span::default(), "", e.reason()))
            .ok()
    }

    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    pub fn node_count(&self) -> u32 {
        self.reader.metadata().node_count
    }

    /// When the database was built (unix seconds), from its own metadata.
    pub fn built(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// Where the address is located (not where its network is registered).
    pub fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let found = self.reader.lookup(ip).ok()?;
        let code = found
            .decode_path::<&str>(&path!["country", "iso_code"])
            .ok()
            .flatten()
            // The ip-location-db / DB-IP lite layout.
            .or_else(|| {
                found
                    .decode_path::<&str>(&path!["country_code"])
                    .ok()
                    .flatten()
            })?;
        CountryCode::parse(code)
    }

    /// `(city, region)`: the city's English name, and the region as an ISO 3166-2 code
    /// (`GB-ENG`) — or its name where the database has no code (the DB-IP layout).
    pub fn place(&self, ip: IpAddr) -> (Option<Box<str>>, Option<Box<str>>) {
        let Ok(found) = self.reader.lookup(ip) else {
            return (None, None);
        };
        let text = |path: &[maxminddb::PathElement]| found.decode_path::<&str>(path).ok().flatten();
        let city = text(&path!["city", "names", "en"]).or_else(|| text(&path!["city"]));
        let region = match (
            text(&path!["country", "iso_code"]),
            text(&path!["subdivisions", 0, "iso_code"]),
        ) {
            (Some(c), Some(r)) => Some(format!("{c}-{r}").into_boxed_str()),
            _ => text(&path!["state1"]).map(Box::from),
        };
        (city.map(Box::from), region)
    }

    pub fn asn(&self, ip: IpAddr) -> (Option<u32>, Option<&str>) {
        let Ok(found) = self.reader.lookup(ip) else {
            return (None, None);
        };
        // MaxMind stores it as uint32, some other writers wider: accept both.
        let key = path!["autonomous_system_number"];
        let number = found.decode_path::<u32>(&key).ok().flatten().or_else(|| {
            let wide = found.decode_path::<u64>(&key).ok().flatten();
            wide.and_then(|n| u32::try_from(n).ok())
        });
        let org = found
            .decode_path::<&str>(&path!["autonomous_system_organization"])
            .ok()
            .flatten();
        (number, org)
    }

    pub fn anonymous(&self, ip: IpAddr) -> Anonymous {
        let record = self
            .reader
            .lookup(ip)
            .ok()
            .and_then(|f| f.decode::<AnonymousRecord>().ok().flatten());
        let Some(r) = record else {
            return Anonymous::default();
        };
        let flags = [
            r.is_anonymous_vpn,
            r.is_tor_exit_node,
            r.is_public_proxy,
            r.is_hosting_provider,
            r.is_residential_proxy,
        ];
        Anonymous(
            flags
                .iter()
                .enumerate()
                .filter(|(_, f)| f.unwrap_or(false))
                .fold(0, |acc, (i, _)| acc | (1 << i)),
        )
    }
}
