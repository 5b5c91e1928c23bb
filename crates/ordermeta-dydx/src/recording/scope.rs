//! [`RolloutScope`]: which orders are recorded — all, none, some markets, some subaccounts, a
//! share of orders, or a combination — with its text form (the environment) and its serde
//! form (a configuration file).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use ordermeta_core::OrderId;
use serde::{Deserialize, Serialize};

use super::InvalidRecordingSetting;

/// Buckets of the share rule: a share is counted in basis points (1/100 of a percent).
const BUCKETS: u32 = 10_000;

/// Which orders placement records: the rollout scope of the recording switch.
///
/// A scope is either **none** (`enabled: false`: no order is recorded, placement behaves as
/// without ordermeta) or the orders that **every** configured criterion admits:
///
/// - [`clob_pairs`](Self::clob_pairs): the order's market is one of these;
/// - [`subaccounts`](Self::subaccounts): the order's subaccount is one of these;
/// - [`share`](Self::share): the order falls in this share of all orders, decided by
///   [`Share::bucket`], a fixed hash of the order's chain identity — the same order is always
///   in or out, in every process and version, and a retry does not flip it.
///
/// A criterion left `None` admits every order, so the scope with none set is **all**. An
/// empty set admits nothing. Criteria combine with *and*: `clob_pairs=0;share=10%` records a
/// tenth of the orders of market 0.
///
/// Text form ([`FromStr`], [`Display`](fmt::Display); what
/// [`RECORDING_ENV`](crate::RECORDING_ENV) holds):
/// `on`/`all` (also `true`, `1`), `off`/`none` (also `false`, `0`), or criteria separated by
/// `;`, each `key=value`: `clob_pairs=0,1`, `subaccounts=0,dydx1…/2` (a number alone is that
/// subaccount of any owner), `share=12.5%` (up to two decimals). Keys are case-insensitive;
/// a key given twice, an unknown key or an empty list is an error, never a guess.
///
/// Serde form: the text form as a string, `true`/`false`, or a table
/// `{ enabled = true, clob_pairs = [0, 1], subaccounts = ["0"], share = "25%" }` (every key
/// optional, unknown keys refused); it serializes as the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScopeRepr", into = "ScopeTable")]
pub struct RolloutScope {
    /// False: no order is recorded, whatever the criteria say.
    pub enabled: bool,
    /// Only orders in these markets (clob pair ids); `None` admits every market.
    pub clob_pairs: Option<BTreeSet<u32>>,
    /// Only orders of these subaccounts; `None` admits every subaccount.
    pub subaccounts: Option<BTreeSet<SubaccountRef>>,
    /// Only this share of orders; `None` admits every order.
    pub share: Option<Share>,
}

impl Default for RolloutScope {
    /// All orders.
    fn default() -> Self {
        Self::all()
    }
}

impl RolloutScope {
    /// Every order is recorded.
    pub const fn all() -> Self {
        RolloutScope {
            enabled: true,
            clob_pairs: None,
            subaccounts: None,
            share: None,
        }
    }

    /// No order is recorded.
    pub const fn none() -> Self {
        RolloutScope {
            enabled: false,
            clob_pairs: None,
            subaccounts: None,
            share: None,
        }
    }

    /// Orders in these markets only.
    pub fn clob_pairs(ids: impl IntoIterator<Item = u32>) -> Self {
        Self::all().with_clob_pairs(ids)
    }

    /// Orders of these subaccounts only.
    pub fn subaccounts(subaccounts: impl IntoIterator<Item = SubaccountRef>) -> Self {
        Self::all().with_subaccounts(subaccounts)
    }

    /// This share of orders only.
    pub fn share(share: Share) -> Self {
        Self::all().with_share(share)
    }

    /// This scope, further limited to these markets (replacing a market criterion).
    pub fn with_clob_pairs(mut self, ids: impl IntoIterator<Item = u32>) -> Self {
        self.clob_pairs = Some(ids.into_iter().collect());
        self
    }

    /// This scope, further limited to these subaccounts (replacing a subaccount criterion).
    pub fn with_subaccounts(
        mut self,
        subaccounts: impl IntoIterator<Item = SubaccountRef>,
    ) -> Self {
        self.subaccounts = Some(subaccounts.into_iter().collect());
        self
    }

    /// This scope, further limited to this share of orders (replacing a share criterion).
    pub fn with_share(mut self, share: Share) -> Self {
        self.share = Some(share);
        self
    }

    /// Whether an order with this chain identity is recorded: the scope is enabled and every
    /// criterion set admits it.
    pub fn admits(&self, id: &OrderId) -> bool {
        self.enabled
            && self
                .clob_pairs
                .as_ref()
                .is_none_or(|set| set.contains(&id.clob_pair_id))
            && self
                .subaccounts
                .as_ref()
                .is_none_or(|set| set.iter().any(|s| s.matches(id)))
            && self.share.is_none_or(|share| share.admits(id))
    }

    /// Whether no order can be admitted (off, an empty set, or a share of 0 %).
    pub fn is_none(&self) -> bool {
        !self.enabled
            || self.clob_pairs.as_ref().is_some_and(BTreeSet::is_empty)
            || self.subaccounts.as_ref().is_some_and(BTreeSet::is_empty)
            || self.share == Some(Share::NONE)
    }

    /// Whether every order is admitted (enabled, no set, and no share below 100 %).
    pub fn is_all(&self) -> bool {
        self.enabled
            && self.clob_pairs.is_none()
            && self.subaccounts.is_none()
            && self.share.is_none_or(|s| s == Share::ALL)
    }
}

impl fmt::Display for RolloutScope {
    /// The text form: `all`, `off`, or the criteria (`clob_pairs=0,1;share=25%`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enabled {
            return f.write_str("off");
        }
        let mut parts = Vec::new();
        if let Some(set) = &self.clob_pairs {
            parts.push(format!("clob_pairs={}", join(set)));
        }
        if let Some(set) = &self.subaccounts {
            parts.push(format!("subaccounts={}", join(set)));
        }
        if let Some(share) = self.share {
            parts.push(format!("share={share}"));
        }
        if parts.is_empty() {
            f.write_str("all")
        } else {
            f.write_str(&parts.join(";"))
        }
    }
}

fn join<T: fmt::Display>(set: &BTreeSet<T>) -> String {
    set.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl FromStr for RolloutScope {
    type Err = InvalidRecordingSetting;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| InvalidRecordingSetting {
            value: value.to_owned(),
            reason,
        };
        let text = value.trim();
        match text.to_ascii_lowercase().as_str() {
            "on" | "all" | "true" | "1" => return Ok(Self::all()),
            "off" | "none" | "false" | "0" => return Ok(Self::none()),
            "" => return Err(bad("it is empty".into())),
            _ => {}
        }
        let mut scope = Self::all();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, list)) = part.split_once('=') else {
                return Err(bad(format!("{part:?} is not key=value")));
            };
            let (key, list) = (key.trim().to_ascii_lowercase(), list.trim());
            let items = || list.split(',').map(str::trim);
            if list.is_empty() {
                return Err(bad(format!(
                    "{key} has no value (use `off` to record nothing)"
                )));
            }
            let repeated = match key.as_str() {
                "clob_pairs" => {
                    let ids = items()
                        .map(|i| i.parse::<u32>().map_err(|_| i))
                        .collect::<Result<BTreeSet<_>, _>>()
                        .map_err(|i| bad(format!("clob pair {i:?} is not a number")))?;
                    scope.clob_pairs.replace(ids).is_some()
                }
                "subaccounts" => {
                    let subs = items()
                        .map(SubaccountRef::from_str)
                        .collect::<Result<BTreeSet<_>, _>>()
                        .map_err(|e| bad(e.reason))?;
                    scope.subaccounts.replace(subs).is_some()
                }
                "share" => {
                    let share = Share::from_str(list).map_err(|e| bad(e.reason))?;
                    scope.share.replace(share).is_some()
                }
                other => {
                    return Err(bad(format!(
                        "unknown criterion {other:?} (clob_pairs, subaccounts, share)"
                    )));
                }
            };
            if repeated {
                return Err(bad(format!("{key} is given twice")));
            }
        }
        Ok(scope)
    }
}

/// A share of orders, in basis points (`0..=10_000`, 100 % = 10 000).
///
/// Whether an order falls in the share is decided by [`Share::bucket`] of its chain
/// identity, so raising the share only adds orders (every order of 10 % is in 20 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Share(u16);

impl Share {
    /// No order.
    pub const NONE: Share = Share(0);
    /// Every order.
    pub const ALL: Share = Share(10_000);

    /// `bp` basis points (1/100 of a percent); `None` above 10 000.
    pub fn from_basis_points(bp: u32) -> Option<Share> {
        // In range of u16 once checked: 10 000 < 65 536.
        u16::try_from(bp).ok().filter(|_| bp <= BUCKETS).map(Share)
    }

    /// `p` whole percent; `None` above 100.
    pub fn percent(p: u32) -> Option<Share> {
        p.checked_mul(100).and_then(Share::from_basis_points)
    }

    /// The share in basis points.
    pub const fn basis_points(self) -> u32 {
        self.0 as u32
    }

    /// Whether this order falls in the share: its [`bucket`](Self::bucket) is below the
    /// share's basis points.
    pub fn admits(self, id: &OrderId) -> bool {
        Self::bucket(id) < self.basis_points()
    }

    /// The order's bucket, `0..10_000`: FNV-1a (64 bit) of the UTF-8 text
    /// `owner/subaccount/clob_pair/flags/client_id`, passed through the MurmurHash3 64-bit
    /// finalizer, modulo 10 000. Fixed for ever (never Rust's randomized hasher), so every
    /// process, machine and version agrees, and it can be reproduced outside Rust. The
    /// good-til is left out: a re-placement of the same client id stays in or out.
    pub fn bucket(id: &OrderId) -> u32 {
        let text = format!(
            "{}/{}/{}/{}/{}",
            id.owner, id.subaccount_number, id.clob_pair_id, id.order_flags, id.client_id
        );
        (fmix64(fnv1a64(text.as_bytes())) % u64::from(BUCKETS)) as u32
    }
}

/// FNV-1a, 64 bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// MurmurHash3's 64-bit finalizer: spreads FNV's weak low bits over the whole word, so the
/// buckets of consecutive client ids are uniform.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl fmt::Display for Share {
    /// `12.5%`, `10%`, `0.01%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            _ if frac % 10 == 0 => write!(f, "{whole}.{}%", frac / 10),
            _ => write!(f, "{whole}.{frac:02}%"),
        }
    }
}

impl FromStr for Share {
    type Err = InvalidRecordingSetting;

    /// `N%` with up to two decimals, `0%..=100%`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| InvalidRecordingSetting {
            value: value.to_owned(),
            reason: format!("share {value:?} {reason}"),
        };
        let Some(number) = value.trim().strip_suffix('%') else {
            return Err(bad("must be a percentage, e.g. 12.5%"));
        };
        let (whole, frac) = number.trim().split_once('.').unwrap_or((number.trim(), ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 3 || !digits(whole) || frac.len() > 2 || !digits(frac)
        {
            return Err(bad(
                "must be a number from 0% to 100% with at most two decimals",
            ));
        }
        let whole: u32 = whole.parse().map_err(|_| bad("is not a number"))?;
        let frac: u32 = format!("{frac:0<2}")
            .parse()
            .map_err(|_| bad("is not a number"))?;
        whole
            .checked_mul(100)
            .and_then(|w| Share::from_basis_points(w + frac))
            .ok_or_else(|| bad("is above 100%"))
    }
}

impl TryFrom<String> for Share {
    type Error = InvalidRecordingSetting;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Share> for String {
    fn from(share: Share) -> String {
        share.to_string()
    }
}

/// A subaccount in a [`RolloutScope`]: `number` of `owner`, or of any owner.
///
/// Text form: `3` (subaccount 3 of any owner — a bot usually signs for one address) or
/// `dydx1…/3`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubaccountRef {
    /// The owner's address; `None` matches every owner.
    pub owner: Option<String>,
    /// The subaccount number.
    pub number: u32,
}

impl SubaccountRef {
    /// Subaccount `number` of any owner.
    pub fn number(number: u32) -> Self {
        SubaccountRef {
            owner: None,
            number,
        }
    }

    /// Subaccount `number` of `owner`.
    pub fn of(owner: impl Into<String>, number: u32) -> Self {
        SubaccountRef {
            owner: Some(owner.into()),
            number,
        }
    }

    /// Whether the order belongs to this subaccount.
    pub fn matches(&self, id: &OrderId) -> bool {
        id.subaccount_number == self.number && self.owner.as_ref().is_none_or(|o| *o == id.owner)
    }
}

impl fmt::Display for SubaccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(owner) => write!(f, "{owner}/{}", self.number),
            None => write!(f, "{}", self.number),
        }
    }
}

impl FromStr for SubaccountRef {
    type Err = InvalidRecordingSetting;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidRecordingSetting {
            value: value.to_owned(),
            reason: format!("subaccount {value:?} is not `number` or `owner/number`"),
        };
        let (owner, number) = match value.trim().rsplit_once('/') {
            Some((owner, number)) => (Some(owner.trim()), number.trim()),
            None => (None, value.trim()),
        };
        let number = number.parse().map_err(|_| bad())?;
        match owner {
            Some(o) if o.is_empty() || !o.bytes().all(|b| b.is_ascii_alphanumeric()) => Err(bad()),
            owner => Ok(SubaccountRef {
                owner: owner.map(str::to_owned),
                number,
            }),
        }
    }
}

impl TryFrom<String> for SubaccountRef {
    type Error = InvalidRecordingSetting;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<SubaccountRef> for String {
    fn from(s: SubaccountRef) -> String {
        s.to_string()
    }
}

/// The table form a scope serializes to (and one of the forms it reads).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeTable {
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clob_pairs: Option<BTreeSet<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subaccounts: Option<BTreeSet<SubaccountRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    share: Option<Share>,
}

fn enabled_by_default() -> bool {
    true
}

/// Every form a scope is read from.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeRepr {
    Switch(bool),
    Text(String),
    Table(ScopeTable),
}

impl TryFrom<ScopeRepr> for RolloutScope {
    type Error = InvalidRecordingSetting;

    fn try_from(repr: ScopeRepr) -> Result<Self, Self::Error> {
        match repr {
            ScopeRepr::Switch(true) => Ok(Self::all()),
            ScopeRepr::Switch(false) => Ok(Self::none()),
            ScopeRepr::Text(text) => text.parse(),
            ScopeRepr::Table(t) => Ok(RolloutScope {
                enabled: t.enabled,
                clob_pairs: t.clob_pairs,
                subaccounts: t.subaccounts,
                share: t.share,
            }),
        }
    }
}

impl From<RolloutScope> for ScopeTable {
    fn from(s: RolloutScope) -> Self {
        ScopeTable {
            enabled: s.enabled,
            clob_pairs: s.clob_pairs,
            subaccounts: s.subaccounts,
            share: s.share,
        }
    }
}
