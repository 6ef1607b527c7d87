//! Workflow definitions as a host receives them: `DagSpec::from_json` and validation (node
//! ids, dependencies, cycles, conditions, retry and timeout policies), and whole run
//! runs (a definition with an input, an idempotency key and a priority). Nothing may panic; a validated DAG's topological order
//! lists every node once, after all of its dependencies; a definition that validates
//! reads back from its own JSON to the same DAG.
#![no_main]

use ate_orchestrate::workflow::{DagSpec, Limits, RunSpec, StepName, ValidDag};
use libfuzzer_sys::fuzz_target;

fn is_step(name: &StepName) -> bool {
    matches!(name.as_str(), "build" | "test" | "deploy" | "lint")
}

fn check_order(dag: &ValidDag) {
    let order = dag.topological_order();
    assert_eq!(order.len(), dag.nodes().len());
    let mut position = vec![usize::MAX; order.len()];
    for (at, &i) in order.iter().enumerate() {
        assert_eq!(position[i], usize::MAX, "node {i} listed twice");
        position[i] = at;
    }
    for (i, node) in dag.nodes().iter().enumerate() {
        for &d in &node.depends_on {
            assert!(
                position[d] < position[i],
                "a node runs before its dependency"
            );
            assert!(dag.nodes()[d].dependents.contains(&i));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let limits = Limits::default().max_nodes(64);
    if mode % 2 == 0 {
        let Ok(spec) = DagSpec::from_json(text, &limits) else {
            return;
        };
        if let Ok(dag) = spec.validate(&limits, &is_step) {
            check_order(&dag);
            let again = DagSpec::from_json(spec.to_json().as_bytes(), &limits)
                .expect("a definition reads back from its own JSON");
            let dag2 = again
                .validate(&limits, &is_step)
                .expect("and validates again");
            assert_eq!(dag2.nodes().len(), dag.nodes().len());
            assert_eq!(dag2.topological_order(), dag.topological_order());
        }
    } else {
        // A run: `definition \n input`, with an idempotency key and a priority.
        let (dag, rest) =
            text.split_at(text.iter().position(|&b| b == b'\n').unwrap_or(text.len()));
        let (Ok(dag), Ok(input)) = (
            DagSpec::from_json(dag, &limits),
            serde_json::from_slice::<serde_json::Value>(rest.get(1..).unwrap_or_default()),
        ) else {
            return;
        };
        let key = String::from_utf8_lossy(&rest[rest.len().min(1)..rest.len().min(9)]).into_owned();
        let run = RunSpec::new(dag, input)
            .idempotency_key(key)
            .priority(i32::from(mode) - 128);
        if let Ok(valid) = run.validate(&limits, &is_step) {
            check_order(valid.dag());
        }
    }
});
