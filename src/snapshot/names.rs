//! The names of one generation as shared strings, made once at build: a click event clones
//! the few it carries instead of keeping the whole snapshot alive while it drains.

use std::sync::Arc;

use crate::identity::Intel;
use crate::rules::{Decision, Rules};

pub struct Names {
    routes: Vec<(Arc<str>, &'static str)>,
    campaigns: Vec<Arc<str>>,
    /// Per campaign, its flows' names.
    flows: Vec<Vec<Arc<str>>>,
    /// In `Intel::lists` order, so a visitor's membership bits index it.
    lists: Arc<[Arc<str>]>,
}

impl Names {
    pub fn new(rules: &Rules, intel: &Intel) -> Names {
        Names {
            routes: (rules.routes.iter())
                .map(|r| (Arc::from(r.name.as_str()), r.action.kind()))
                .collect(),
            campaigns: (rules.campaigns.iter())
                .map(|c| Arc::from(c.id.as_str()))
                .collect(),
            flows: (rules.campaigns.iter())
                .map(|c| c.flows.iter().map(|f| Arc::from(f.name.as_str())).collect())
                .collect(),
            lists: intel
                .lists
                .iter()
                .map(|l| Arc::from(l.name.as_str()))
                .collect(),
        }
    }

    /// The route's name and what it does (`proxy`, `redirect`, `respond`).
    pub fn route(&self, d: &Decision) -> (&Arc<str>, &'static str) {
        let (name, action) = &self.routes[d.route];
        (name, action)
    }

    pub fn campaign(&self, d: &Decision) -> Option<&Arc<str>> {
        self.campaigns.get(d.campaign?)
    }

    pub fn flow(&self, d: &Decision) -> Option<&Arc<str>> {
        self.flows.get(d.campaign?)?.get(d.flow?)
    }

    pub fn lists(&self) -> &Arc<[Arc<str>]> {
        &self.lists
    }
}
