//! A validated DAG ([`ValidDag`]): unique node ids, known steps, dependencies that exist and
//! never loop, conditions on real dependencies, valid retry policies and timeouts, within the
//! [`Limits`]. Produced by [`DagSpec::validate`]; the engine only ever runs one of these.

use super::condition::Condition;
use super::policy::{NodeRetry, ValidTimeouts};
use super::spec::{DagSpec, Limits, NodeSpec};
use crate::OrchestrateError;
use crate::name::name_type;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

name_type!(
    /// A node's id, unique within its DAG (`clone`, `scan-a`).
    NodeId,
    "node id"
);
name_type!(
    /// The name a step handler is registered under (`git.clone`, `scan`).
    StepName,
    "step name"
);
name_type!(
    /// The name of a signal a node waits for (`approval`).
    SignalName,
    "signal name"
);

/// What a node does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NodeKind {
    /// Runs a registered step handler, retried and timed out per its policy.
    Step {
        /// The handler.
        step: StepName,
        /// Its retries.
        retry: NodeRetry,
        /// Its timeouts.
        timeouts: ValidTimeouts,
    },
    /// Completes when the host delivers the signal to the run; fails at the timeout.
    Signal {
        /// The signal.
        signal: SignalName,
        /// How long it waits (none: as long as the run lives).
        timeout: Option<Duration>,
    },
}

/// A node of a [`ValidDag`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ValidNode {
    /// Its id.
    pub id: NodeId,
    /// What it does.
    pub kind: NodeKind,
    /// Indexes (into [`ValidDag::nodes`]) of the nodes it waits for, ascending.
    pub depends_on: Vec<usize>,
    /// Indexes of the nodes that wait for it, ascending.
    pub dependents: Vec<usize>,
    /// The condition it runs under, if any.
    pub when: Option<Condition>,
    /// Whether the run goes on when it fails for good.
    pub continue_on_failure: bool,
    /// Fixed arguments for its handler ([`NodeSpec::params`]).
    pub params: Option<serde_json::Value>,
}

/// A DAG that passed every check of [`DagSpec::validate`]. Nodes keep the order they were
/// written in; [`ValidDag::topological_order`] gives an order in which every node comes
/// after its dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDag {
    nodes: Vec<ValidNode>,
    order: Vec<usize>,
}

impl ValidDag {
    /// The nodes, as written.
    pub fn nodes(&self) -> &[ValidNode] {
        &self.nodes
    }

    /// Node indexes, every node after its dependencies (ties in written order).
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// The nodes with no dependency: the ones a new run starts with.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.depends_on.is_empty())
            .map(|(i, _)| i)
    }

    /// The index of node `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id.as_str() == id)
    }
}

impl DagSpec {
    /// Checks everything about the DAG and returns it validated. `is_step` says whether a
    /// step handler is registered under a name (the engine passes its registry).
    ///
    /// Refused with [`OrchestrateError::InvalidInput`], naming the node and the problem: an
    /// empty DAG; more than [`Limits::max_nodes`] nodes; an invalid or duplicate node id; a
    /// node with both or neither of `step` and `signal`; an unknown step; a signal timeout
    /// of zero, or on a step node; a dependency on a missing node, on itself or listed twice;
    /// a cycle (the message spells it out, `a → b → a`); a condition on a node that is not a
    /// dependency; an invalid retry policy or timeouts, or either on a signal node.
    pub fn validate(
        &self,
        limits: &Limits,
        is_step: &dyn Fn(&StepName) -> bool,
    ) -> Result<ValidDag, OrchestrateError> {
        let bad = |reason: String| OrchestrateError::invalid("workflow", reason);
        if self.nodes.is_empty() {
            return Err(bad("a workflow needs at least one node".into()));
        }
        if self.nodes.len() > limits.max_nodes {
            return Err(bad(format!(
                "{} nodes is more than the limit of {}",
                self.nodes.len(),
                limits.max_nodes
            )));
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.nodes.len());
        let mut ids = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let id = NodeId::new(node.id.as_str())?;
            if index.insert(node.id.as_str(), i).is_some() {
                return Err(bad(format!("node id {id} is used twice")));
            }
            ids.push(id);
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (node, id) in self.nodes.iter().zip(ids) {
            let depends_on = dependencies(node, &index)?;
            if let Some(when) = &node.when {
                when.validate(&node.id)?;
                let on = index.get(when.node.as_str());
                if !on.is_some_and(|on| depends_on.contains(on)) {
                    return Err(bad(format!(
                        "node {}'s condition reads node {:?}, which it does not depend on",
                        node.id, when.node
                    )));
                }
            }
            nodes.push(ValidNode {
                kind: kind(node, is_step)?,
                id,
                depends_on,
                dependents: Vec::new(),
                when: node.when.clone(),
                continue_on_failure: node.continue_on_failure,
                params: node.params.clone(),
            });
        }
        for i in 0..nodes.len() {
            for d in nodes[i].depends_on.clone() {
                nodes[d].dependents.push(i);
            }
        }
        let order = topological_order(&nodes)?;
        Ok(ValidDag { nodes, order })
    }
}

/// The indexes of `node`'s dependencies, ascending.
fn dependencies(
    node: &NodeSpec,
    index: &HashMap<&str, usize>,
) -> Result<Vec<usize>, OrchestrateError> {
    let bad = |reason: String| OrchestrateError::invalid("workflow", reason);
    let mut seen = BTreeSet::new();
    for dep in &node.depends_on {
        if dep == &node.id {
            return Err(bad(format!("node {} depends on itself", node.id)));
        }
        let Some(&d) = index.get(dep.as_str()) else {
            return Err(bad(format!(
                "node {} depends on {dep:?}, which is not a node of this workflow",
                node.id
            )));
        };
        if !seen.insert(d) {
            return Err(bad(format!(
                "node {} lists dependency {dep} twice",
                node.id
            )));
        }
    }
    Ok(seen.into_iter().collect())
}

/// What `node` does, checked.
fn kind(
    node: &NodeSpec,
    is_step: &dyn Fn(&StepName) -> bool,
) -> Result<NodeKind, OrchestrateError> {
    let bad = |reason: String| {
        OrchestrateError::invalid("workflow", format!("node {}: {reason}", node.id))
    };
    match (&node.step, &node.signal) {
        (Some(step), None) => {
            let step = StepName::new(step.as_str())?;
            if !is_step(&step) {
                return Err(bad(format!("no step handler is registered as \"{step}\"")));
            }
            if node.timeout_ms.is_some() {
                return Err(bad(
                    "timeout_ms is for signal nodes; a step's limits go in timeouts".into(),
                ));
            }
            Ok(NodeKind::Step {
                retry: node.retry.clone().unwrap_or_default().validate(&node.id)?,
                timeouts: node.timeouts.unwrap_or_default().validate(&node.id)?,
                step,
            })
        }
        (None, Some(signal)) => {
            if node.params.is_some() {
                return Err(bad(
                    "params are for step nodes; a signal node has no handler".into(),
                ));
            }
            if node.retry.is_some() || node.timeouts.is_some() {
                return Err(bad(
                    "a signal node has no retry policy or step timeouts (use timeout_ms)".into(),
                ));
            }
            if node.timeout_ms == Some(0) {
                return Err(bad("timeout_ms must be positive".into()));
            }
            Ok(NodeKind::Signal {
                signal: SignalName::new(signal.as_str())?,
                timeout: node.timeout_ms.map(Duration::from_millis),
            })
        }
        (Some(_), Some(_)) => Err(bad("has both step and signal; a node does one".into())),
        (None, None) => Err(bad("needs a step to run or a signal to wait for".into())),
    }
}

/// Kahn's algorithm, smallest index first among the ready nodes; on a cycle, the error
/// spells one out.
fn topological_order(nodes: &[ValidNode]) -> Result<Vec<usize>, OrchestrateError> {
    let mut waiting: Vec<usize> = nodes.iter().map(|n| n.depends_on.len()).collect();
    let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &nodes[i].dependents {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    let cycle = find_cycle(nodes, &waiting);
    let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].id.as_str()).collect();
    Err(OrchestrateError::invalid(
        "workflow",
        format!("the dependencies form a cycle: {}", names.join(" → ")),
    ))
}

/// A cycle among the nodes Kahn's algorithm could not order (`waiting > 0`), as node
/// indexes with the first repeated at the end. Every such node has a dependency that is
/// also stuck, so walking "a stuck dependency of" from any of them must revisit a node.
fn find_cycle(nodes: &[ValidNode], waiting: &[usize]) -> Vec<usize> {
    let stuck = |i: usize| waiting[i] > 0;
    let Some(start) = (0..nodes.len()).find(|&i| stuck(i)) else {
        return Vec::new();
    };
    let mut position: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut at = start;
    loop {
        if let Some(&p) = position.get(&at) {
            // path[p..] is the cycle, walked against the arrows: turn it round so that it
            // reads in dependency order (a → b means b depends on a).
            let mut cycle: Vec<usize> = path[p..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return cycle;
        }
        position.insert(at, path.len());
        path.push(at);
        match nodes[at].depends_on.iter().copied().find(|&d| stuck(d)) {
            Some(next) => at = next,
            None => return path, // unreachable for a stuck node; show what was walked
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::workflow::{NodeTimeouts, RetrySpec};
    use serde_json::json;

    fn any_step(_: &StepName) -> bool {
        true
    }

    fn validate(dag: &DagSpec) -> Result<ValidDag, OrchestrateError> {
        dag.validate(&Limits::default(), &any_step)
    }

    fn refused(dag: DagSpec) -> String {
        let e = validate(&dag).unwrap_err();
        assert!(
            matches!(e, OrchestrateError::InvalidInput { .. }),
            "not InvalidInput: {e:?}"
        );
        e.to_string()
    }

    #[test]
    fn fan_out_and_fan_in() {
        let mut dag = DagSpec::new().node(NodeSpec::step("join", "merge"));
        for i in 0..5 {
            dag.nodes[0].depends_on.push(format!("part-{i}"));
            dag = dag.node(NodeSpec::step(format!("part-{i}"), "scan").depends_on("split"));
        }
        let dag = dag.node(NodeSpec::step("split", "split"));
        let valid = validate(&dag).unwrap();
        let id = |i: usize| valid.nodes()[i].id.as_str().to_owned();
        let order: Vec<String> = valid.topological_order().iter().map(|&i| id(i)).collect();
        assert_eq!(order.first().map(String::as_str), Some("split"));
        assert_eq!(order.last().map(String::as_str), Some("join"));
        assert_eq!(valid.roots().map(id).collect::<Vec<_>>(), ["split"]);
        let split = valid.index_of("split").unwrap();
        assert_eq!(valid.nodes()[split].dependents.len(), 5);
        assert_eq!(
            valid.nodes()[valid.index_of("join").unwrap()]
                .depends_on
                .len(),
            5
        );
    }

    #[test]
    fn cycles_are_spelled_out() {
        let e = refused(
            DagSpec::new()
                .node(NodeSpec::step("start", "s"))
                .node(NodeSpec::step("a", "s").depends_on("start").depends_on("c"))
                .node(NodeSpec::step("b", "s").depends_on("a"))
                .node(NodeSpec::step("c", "s").depends_on("b")),
        );
        assert!(e.contains("the dependencies form a cycle: "), "{e}");
        let cycle = e.rsplit(": ").next().unwrap();
        let names: Vec<&str> = cycle.split(" → ").collect();
        assert_eq!(names.len(), 4, "{e}");
        assert_eq!(names.first(), names.last());
        let mut inner = names[..3].to_vec();
        inner.sort_unstable();
        assert_eq!(inner, ["a", "b", "c"]);
        // Each arrow points from a dependency to its dependent.
        let dag_edges = [("c", "a"), ("a", "b"), ("b", "c")];
        for pair in names.windows(2) {
            assert!(dag_edges.contains(&(pair[0], pair[1])), "{e}");
        }
        let e = refused(
            DagSpec::new()
                .node(NodeSpec::step("x", "s").depends_on("y"))
                .node(NodeSpec::step("y", "s").depends_on("x")),
        );
        assert!(e.ends_with("x → y → x") || e.ends_with("y → x → y"), "{e}");
        let e = refused(DagSpec::new().node(NodeSpec::step("me", "s").depends_on("me")));
        assert!(e.contains("node me depends on itself"), "{e}");
    }

    #[test]
    fn bad_graphs_name_the_problem() {
        let step = |id: &str| NodeSpec::step(id, "s");
        for (dag, says) in [
            (DagSpec::new(), "a workflow needs at least one node"),
            (
                DagSpec::new().node(step("a")).node(step("a")),
                "node id a is used twice",
            ),
            (DagSpec::new().node(step("a b")), "invalid node id"),
            (DagSpec::new().node(step("")), "must not be empty"),
            (
                DagSpec::new().node(step("a").depends_on("ghost")),
                "node a depends on \"ghost\", which is not a node of this workflow",
            ),
            (
                DagSpec::new()
                    .node(step("a"))
                    .node(step("b").depends_on("a").depends_on("a")),
                "node b lists dependency a twice",
            ),
            (
                DagSpec::new().node(NodeSpec {
                    id: "n".into(),
                    ..NodeSpec::default()
                }),
                "node n: needs a step to run or a signal to wait for",
            ),
            (
                DagSpec::new().node(NodeSpec {
                    signal: Some("go".into()),
                    ..NodeSpec::step("n", "s")
                }),
                "node n: has both step and signal",
            ),
            (
                DagSpec::new().node(step("n").timeout_ms(5)),
                "timeout_ms is for signal nodes",
            ),
            (
                DagSpec::new().node(NodeSpec::signal("n", "go").timeout_ms(0)),
                "node n: timeout_ms must be positive",
            ),
            (
                DagSpec::new().node(NodeSpec::signal("n", "go").retry(RetrySpec::default())),
                "a signal node has no retry policy",
            ),
            (
                DagSpec::new().node(NodeSpec::signal("n", "go").timeouts(NodeTimeouts::default())),
                "a signal node has no retry policy",
            ),
            (
                DagSpec::new().node(NodeSpec::signal("n", "no way")),
                "invalid signal name",
            ),
            (
                DagSpec::new()
                    .node(step("a"))
                    .node(step("b"))
                    .node(step("c").depends_on("a").when(Condition::exists("b", ""))),
                "node c's condition reads node \"b\", which it does not depend on",
            ),
            (
                DagSpec::new().node(step("a").when(Condition::exists("a", "x"))),
                "must be empty or start with '/'",
            ),
            (
                DagSpec::new().node(step("a").retry(RetrySpec::default().max_attempts(0))),
                "node a: max_attempts must be at least 1",
            ),
            (
                DagSpec::new().node(step("a").timeouts(NodeTimeouts::default().heartbeat_ms(0))),
                "node a: heartbeat_ms must be positive",
            ),
        ] {
            let e = refused(dag);
            assert!(e.contains(says), "wanted {says:?} in {e:?}");
        }
    }

    #[test]
    fn steps_must_be_registered_and_size_is_bounded() {
        let dag = DagSpec::new()
            .node(NodeSpec::step("a", "known"))
            .node(NodeSpec::step("b", "unknown"));
        let known = |s: &StepName| s.as_str() == "known";
        let e = dag.validate(&Limits::default(), &known).unwrap_err();
        assert!(
            e.to_string()
                .contains("node b: no step handler is registered as \"unknown\""),
            "{e}"
        );
        let e = dag
            .validate(&Limits::default().max_nodes(1), &known)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("2 nodes is more than the limit of 1"),
            "{e}"
        );
        let e = DagSpec::new()
            .node(NodeSpec::step("a", "no spaces"))
            .validate(&Limits::default(), &any_step);
        assert!(e.unwrap_err().to_string().contains("invalid step name"));
    }

    #[test]
    fn a_large_chain_validates_in_order() {
        let n = 1_000;
        let mut dag = DagSpec::new();
        for i in (0..n).rev() {
            let node = NodeSpec::step(format!("n{i}"), "s");
            dag = dag.node(if i == 0 {
                node
            } else {
                node.depends_on(format!("n{}", i - 1))
            });
        }
        let valid = validate(&dag).unwrap();
        let order: Vec<&str> = valid
            .topological_order()
            .iter()
            .map(|&i| valid.nodes()[i].id.as_str())
            .collect();
        assert_eq!(order[0], "n0");
        assert_eq!(order[n - 1], format!("n{}", n - 1));
        // Closing the chain into a loop is found and spelled out, all 1,000 nodes of it.
        // (nodes were written last first: nodes[n - 1] is n0, which now waits for the last)
        dag.nodes[n - 1].depends_on.push(format!("n{}", n - 1));
        let e = refused(dag);
        assert_eq!(e.matches(" → ").count(), n, "{}", &e[..200]);
    }

    #[test]
    fn json_definitions_validate_too() {
        let text = json!({"nodes": [
            {"id": "clone", "step": "git.clone"},
            {"id": "scan", "step": "scan", "depends_on": ["clone"],
             "retry": {"max_attempts": 5, "non_retryable": ["invalid_input"]},
             "timeouts": {"start_to_close_ms": 60000, "heartbeat_ms": 10000}},
            {"id": "approve", "signal": "approval", "depends_on": ["scan"], "timeout_ms": 86400000},
            {"id": "deploy", "step": "deploy", "depends_on": ["approve", "scan"],
             "when": {"node": "scan", "pointer": "/clean", "op": "equals", "value": true}}
        ]})
        .to_string();
        let limits = Limits::default();
        let valid = DagSpec::from_json(text.as_bytes(), &limits)
            .unwrap()
            .validate(&limits, &any_step)
            .unwrap();
        let deploy = &valid.nodes()[valid.index_of("deploy").unwrap()];
        assert!(deploy.when.as_ref().unwrap().holds(&json!({"clean": true})));
        match &valid.nodes()[valid.index_of("approve").unwrap()].kind {
            NodeKind::Signal { signal, timeout } => {
                assert_eq!(signal.as_str(), "approval");
                assert_eq!(*timeout, Some(Duration::from_secs(86_400)));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Random graphs, seeded: an acyclic one validates and its order puts every node after
    /// its dependencies; one with a back edge is refused with a cycle whose every arrow is
    /// an edge of the graph.
    #[test]
    fn random_graphs() {
        for seed in 0..300u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let n = rng.usize(1..40);
            let mut edges: Vec<(usize, usize)> = Vec::new(); // (dependency, dependent)
            for b in 1..n {
                for a in 0..b {
                    if rng.u8(..) < 40 {
                        edges.push((a, b));
                    }
                }
            }
            let cyclic = n > 1 && rng.bool();
            if cyclic {
                let b = rng.usize(1..n);
                let a = rng.usize(0..b);
                // a path a ⇝ b exists if (a, b) is an edge; add it, then close it with b → a.
                if !edges.contains(&(a, b)) {
                    edges.push((a, b));
                }
                edges.push((b, a));
            }
            let mut dag = DagSpec::new();
            let perm = {
                let mut p: Vec<usize> = (0..n).collect();
                rng.shuffle(&mut p);
                p
            };
            for &i in &perm {
                let mut node = NodeSpec::step(format!("n{i}"), "s");
                for &(a, b) in &edges {
                    if b == i {
                        node = node.depends_on(format!("n{a}"));
                    }
                }
                dag = dag.node(node);
            }
            let edge_names: BTreeSet<(String, String)> = edges
                .iter()
                .map(|&(a, b)| (format!("n{a}"), format!("n{b}")))
                .collect();
            match validate(&dag) {
                Ok(valid) => {
                    assert!(!cyclic, "seed {seed}: a cycle was accepted");
                    let mut at = HashMap::new();
                    for (pos, &i) in valid.topological_order().iter().enumerate() {
                        at.insert(valid.nodes()[i].id.as_str().to_owned(), pos);
                    }
                    assert_eq!(at.len(), n);
                    for (a, b) in &edge_names {
                        assert!(at[a] < at[b], "seed {seed}: {a} after {b}");
                    }
                }
                Err(e) => {
                    assert!(cyclic, "seed {seed}: {e}");
                    let text = e.to_string();
                    let cycle = text.rsplit(": ").next().unwrap_or_default();
                    let names: Vec<&str> = cycle.split(" → ").collect();
                    assert!(names.len() >= 3 && names.first() == names.last(), "{text}");
                    for pair in names.windows(2) {
                        let edge = (pair[0].to_owned(), pair[1].to_owned());
                        assert!(edge_names.contains(&edge), "seed {seed}: {text}");
                    }
                }
            }
        }
    }
}
