//! What a listed name or path comes to: the answer its list (or category, or place)
//! sets.

use serde::{Deserialize, Serialize};

/// What a blocked name's answer should be, as set per list (or category in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Answer with the sinkhole address (the warning page).
    #[default]
    Sinkhole,
    /// Answer NXDOMAIN.
    Nxdomain,
    /// Answer REFUSED.
    Refused,
    /// Answer as if the name were not listed, but count the hit and report it as a
    /// shadow hit: a list (or a place's category) on trial before it blocks.
    Shadow,
    /// Answer as if the name were not listed, and count nothing.
    Off,
}

impl Action {
    /// Parse the config / header spelling (`block` is `sinkhole`).
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "sinkhole" | "block" => Some(Action::Sinkhole),
            "nxdomain" => Some(Action::Nxdomain),
            "refused" => Some(Action::Refused),
            "shadow" => Some(Action::Shadow),
            "off" => Some(Action::Off),
            _ => None,
        }
    }
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Sinkhole => "sinkhole",
            Action::Nxdomain => "nxdomain",
            Action::Refused => "refused",
            Action::Shadow => "shadow",
            Action::Off => "off",
        }
    }
    /// Whether the name is answered by fanzha instead of resolved.
    pub fn blocks(self) -> bool {
        matches!(self, Action::Sinkhole | Action::Nxdomain | Action::Refused)
    }
}
