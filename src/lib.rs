//! flowgate: a traffic-filtering reverse proxy. For every request it works out who the
//! visitor is (`identity`), decides where they go (`rules`), acts on it (`proxy`) and
//! records it (`events`). Routing state lives in immutable `snapshot`s.

pub mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod events;
pub mod identity;
pub mod key_file;
pub mod lifecycle;
pub mod listeners;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod path;
pub mod postbacks;
pub mod problem;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod suggest;
pub mod time;
pub mod tls;
pub mod url;
pub mod yaml;
