//! Traffic policies: how a service's traffic is shared between sets of its instances
//! (canary splits and blue-green switches), stored in the registry so that every host
//! balancing the service applies the same one.

use super::model::{Instance, Scope, ServiceName, validate_name};
use crate::error::OrchestrateError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The metadata key [`Selector::version`] matches.
pub const VERSION_METADATA_KEY: &str = "version";
/// Most groups one [`TrafficPolicy::Split`] may name.
pub const MAX_SPLIT_GROUPS: usize = 8;

/// A set of a service's instances: those carrying `tag`, those whose `version` metadata
/// entry equals `version`, or (both given) those matching both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Selector {
    /// Instances carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Instances whose [`VERSION_METADATA_KEY`] metadata entry is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Selector {
    /// The instances matching every condition given (`None`: no condition on it).
    pub fn new(tag: Option<String>, version: Option<String>) -> Self {
        Selector { tag, version }
    }

    /// The instances tagged `tag`.
    pub fn tag(tag: impl Into<String>) -> Self {
        Selector {
            tag: Some(tag.into()),
            version: None,
        }
    }

    /// The instances whose `version` metadata is `version`.
    pub fn version(version: impl Into<String>) -> Self {
        Selector {
            tag: None,
            version: Some(version.into()),
        }
    }

    /// Whether `instance` is in the set.
    pub fn matches(&self, instance: &Instance) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| instance.spec.tags.contains(t))
            && self
                .version
                .as_ref()
                .is_none_or(|v| instance.spec.metadata.get(VERSION_METADATA_KEY) == Some(v))
    }

    fn validate(&self) -> Result<(), OrchestrateError> {
        if self.tag.is_none() && self.version.is_none() {
            return Err(OrchestrateError::invalid(
                "traffic selector",
                "names neither a tag nor a version (it would select every instance)",
            ));
        }
        if let Some(tag) = &self.tag {
            validate_name("selector tag", tag)?;
        }
        if let Some(version) = &self.version {
            validate_name("selector version", version)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.tag, &self.version) {
            (Some(t), Some(v)) => write!(f, "tag {t:?} and version {v:?}"),
            (Some(t), None) => write!(f, "tag {t:?}"),
            (None, Some(v)) => write!(f, "version {v:?}"),
            (None, None) => f.write_str("nothing"),
        }
    }
}

/// One group of a [`TrafficPolicy::Split`]: the instances `selector` names take `percent`
/// of the service's picks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrafficGroup {
    /// Which instances.
    pub selector: Selector,
    /// Their share of the picks, 0 to 100 (0: none, and never a fallback).
    pub percent: u8,
}

impl TrafficGroup {
    /// `percent` of the picks to the instances `selector` names.
    pub fn new(selector: Selector, percent: u8) -> Self {
        TrafficGroup { selector, percent }
    }
}

/// How a service's picks are shared between sets of its instances. Without a policy every
/// healthy instance takes picks by the balancing strategy; with one, a pick first chooses a
/// group, then balances inside it (breakers, outlier ejection and the panic threshold apply
/// per group). Instances no group selects take no picks. An instance selected by several
/// groups belongs to the first.
///
/// Which group a pick goes to is drawn at random in proportion to the percentages, or, when
/// the pick has a key ([`PickOptions::key`](crate::hub::PickOptions::key), e.g. a tenant or
/// user id), from the key's hash: the same key stays on the same side of a canary while the
/// percentages stay the same.
///
/// ```
/// use ate_orchestrate::registry::{Selector, TrafficGroup, TrafficPolicy};
///
/// // A canary: 10 % to version 2, the rest to version 1.
/// let canary = TrafficPolicy::split([
///     TrafficGroup::new(Selector::version("2"), 10),
///     TrafficGroup::new(Selector::version("1"), 90),
/// ]);
/// canary.validate()?;
/// // Blue-green: everything to the instances tagged green, at once.
/// TrafficPolicy::blue_green(Selector::tag("green")).validate()?;
/// # Ok::<(), ate_orchestrate::OrchestrateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TrafficPolicy {
    /// Canary and weighted rollouts: each group takes its percentage (they add up to 100).
    /// When a group with a nonzero share has no available instance, its picks go to the
    /// other groups with a nonzero share, largest first.
    Split {
        /// The groups, 1 to [`MAX_SPLIT_GROUPS`].
        groups: Vec<TrafficGroup>,
    },
    /// Blue-green: every pick goes to the instances `active` selects, none to the others,
    /// even when no active instance is available (the pick then fails rather than sending
    /// traffic to the set that was switched away from).
    BlueGreen {
        /// The set that takes all traffic.
        active: Selector,
    },
}

impl TrafficPolicy {
    /// A [`TrafficPolicy::Split`].
    pub fn split(groups: impl IntoIterator<Item = TrafficGroup>) -> Self {
        TrafficPolicy::Split {
            groups: groups.into_iter().collect(),
        }
    }

    /// A [`TrafficPolicy::BlueGreen`].
    pub fn blue_green(active: Selector) -> Self {
        TrafficPolicy::BlueGreen { active }
    }

    /// Checks the policy: selectors name a tag or a version (valid names), a split has 1 to
    /// [`MAX_SPLIT_GROUPS`] groups with distinct selectors, percentages up to 100 adding up
    /// to exactly 100.
    pub fn validate(&self) -> Result<(), OrchestrateError> {
        match self {
            TrafficPolicy::BlueGreen { active } => active.validate(),
            TrafficPolicy::Split { groups } => {
                if groups.is_empty() || groups.len() > MAX_SPLIT_GROUPS {
                    return Err(OrchestrateError::invalid(
                        "traffic split",
                        format!("has {} groups; give 1 to {MAX_SPLIT_GROUPS}", groups.len()),
                    ));
                }
                let mut total = 0u32;
                for (i, g) in groups.iter().enumerate() {
                    g.selector.validate()?;
                    if g.percent > 100 {
                        return Err(OrchestrateError::invalid(
                            "traffic split",
                            format!(
                                "group {} ({}) has {} %, more than 100",
                                i, g.selector, g.percent
                            ),
                        ));
                    }
                    if groups[..i].iter().any(|o| o.selector == g.selector) {
                        return Err(OrchestrateError::invalid(
                            "traffic split",
                            format!("{} appears in two groups", g.selector),
                        ));
                    }
                    total += u32::from(g.percent);
                }
                if total != 100 {
                    return Err(OrchestrateError::invalid(
                        "traffic split",
                        format!("the percentages add up to {total}, not 100"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The groups picks are shared between, as (selector, percent).
    pub(crate) fn groups(&self) -> Vec<(Selector, u8)> {
        match self {
            TrafficPolicy::Split { groups } => groups
                .iter()
                .map(|g| (g.selector.clone(), g.percent))
                .collect(),
            TrafficPolicy::BlueGreen { active } => vec![(active.clone(), 100)],
        }
    }

    /// Whether picks may move to another group when theirs has nothing available.
    pub(crate) fn falls_back(&self) -> bool {
        matches!(self, TrafficPolicy::Split { .. })
    }
}

/// A service's traffic policy in one scope, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServicePolicy {
    /// The scope it applies to: a tenant's picks use their tenant's policy for the service,
    /// or the platform's when their tenant has none.
    pub scope: Scope,
    /// The service.
    pub service: ServiceName,
    /// The policy.
    pub policy: TrafficPolicy,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_what_is_wrong() {
        let err = |p: TrafficPolicy| p.validate().unwrap_err().to_string();
        assert!(err(TrafficPolicy::split([])).contains("has 0 groups"));
        assert!(
            err(TrafficPolicy::split([
                TrafficGroup::new(Selector::tag("a"), 60),
                TrafficGroup::new(Selector::tag("b"), 30),
            ]))
            .contains("add up to 90, not 100")
        );
        assert!(
            err(TrafficPolicy::split([TrafficGroup::new(
                Selector::tag("a"),
                200
            )]))
            .contains("more than 100")
        );
        assert!(
            err(TrafficPolicy::split([
                TrafficGroup::new(Selector::tag("a"), 50),
                TrafficGroup::new(Selector::tag("a"), 50),
            ]))
            .contains("appears in two groups")
        );
        let empty = Selector {
            tag: None,
            version: None,
        };
        assert!(err(TrafficPolicy::blue_green(empty)).contains("neither a tag nor a version"));
        assert!(err(TrafficPolicy::blue_green(Selector::tag("no spaces"))).contains("tag"));
        let nine = (0..9).map(|i| TrafficGroup::new(Selector::tag(format!("t{i}")), 0));
        assert!(err(TrafficPolicy::split(nine)).contains("has 9 groups"));
        TrafficPolicy::split([TrafficGroup::new(Selector::version("1.2.0"), 100)])
            .validate()
            .unwrap();
    }

    #[test]
    fn json_form_is_tagged_and_strict() {
        let p: TrafficPolicy = serde_json::from_str(
            r#"{"kind":"split","groups":[{"selector":{"version":"2"},"percent":10},
                {"selector":{"version":"1"},"percent":90}]}"#,
        )
        .unwrap();
        p.validate().unwrap();
        assert!(p.falls_back());
        let bg: TrafficPolicy =
            serde_json::from_str(r#"{"kind":"blue_green","active":{"tag":"green"}}"#).unwrap();
        assert!(!bg.falls_back());
        assert_eq!(bg.groups(), vec![(Selector::tag("green"), 100)]);
        for bad in [
            r#"{"kind":"rolling"}"#,
            r#"{"kind":"blue_green","active":{"tag":"g","colour":"x"}}"#,
            r#"{"kind":"split","groups":[{"selector":{"tag":"a"},"percent":-1}]}"#,
        ] {
            assert!(serde_json::from_str::<TrafficPolicy>(bad).is_err(), "{bad}");
        }
    }
}
