//! The order of a bulk request's operations (RFC 7644 §3.7, §3.7.1): a POST whose bulkId
//! another operation references runs before it, so forward references work; operations on a
//! cycle of references are found (Tarjan's algorithm) and marked, so that they can be created
//! in two steps (see `http::scim::bulk`).

use std::collections::HashMap;

use super::{Method, Operation};

/// One operation in processing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Its index in the request.
    pub index: usize,
    /// It is part of a circular chain of bulkId references (RFC 7644 §3.7.1): it is created
    /// without its references to the chain's POSTs not yet performed, then completed.
    pub circular: bool,
}

/// The order in which to perform the operations: request order, except that a POST whose
/// bulkId an operation references comes before that operation (forward references work).
pub fn plan(ops: &[Operation]) -> Vec<Step> {
    let creators: HashMap<&str, usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.method == Method::Post)
        .filter_map(|(i, op)| op.bulk_id.as_deref().map(|b| (b, i)))
        .collect();
    let deps: Vec<Vec<usize>> = ops
        .iter()
        .map(|op| {
            let mut d: Vec<usize> = op
                .references()
                .iter()
                .filter_map(|b| creators.get(b.as_str()).copied())
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let circular = in_cycles(&deps);
    post_order(&deps)
        .into_iter()
        .map(|index| Step {
            index,
            circular: circular[index],
        })
        .collect()
}

/// Depth-first post-order from each node in turn: dependencies before dependants, and
/// otherwise the original order. Iterative, so a long chain cannot overflow the stack.
fn post_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut seen = vec![false; n];
    let mut out = Vec::with_capacity(n);
    for root in 0..n {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut stack = vec![(root, 0usize)];
        while let Some(&(v, next)) = stack.last() {
            if let Some(&w) = deps[v].get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                stack.pop();
                out.push(v);
            }
        }
    }
    out
}

/// Which nodes lie on a cycle: members of a strongly connected component of more than one
/// node, or with an edge to themselves (Tarjan's algorithm, iterative).
fn in_cycles(deps: &[Vec<usize>]) -> Vec<bool> {
    const UNSEEN: usize = usize::MAX;
    let n = deps.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut component = Vec::new();
    let mut next = 0;
    let mut out = vec![false; n];
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        let mut calls = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        component.push(root);
        on_stack[root] = true;
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = deps[v].get(edge) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    component.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut members = Vec::new();
                while let Some(w) = component.pop() {
                    on_stack[w] = false;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                if members.len() > 1 || deps[v].contains(&v) {
                    for w in members {
                        out[w] = true;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::bulk::{parse_request, BULK_REQUEST_SCHEMA};
    use serde_json::{json, Value};

    fn user(b: &str) -> Value {
        json!({"method": "POST", "path": "/Users", "bulkId": b, "data": {"userName": b}})
    }

    fn group(b: &str, members: &[&str]) -> Value {
        let m: Vec<Value> = members.iter().map(|v| json!({"value": v})).collect();
        json!({"method": "POST", "path": "/Groups", "bulkId": b,
               "data": {"displayName": b, "members": m}})
    }

    fn order(ops: Value) -> Vec<(usize, bool)> {
        let r = parse_request(
            json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": ops}),
            1000,
        )
        .unwrap();
        plan(&r.operations)
            .into_iter()
            .map(|s| (s.index, s.circular))
            .collect()
    }

    #[test]
    fn order_is_request_order_without_references() {
        assert_eq!(
            order(json!([user("a"), user("b"), group("g", &["u-1"])])),
            vec![(0, false), (1, false), (2, false)]
        );
    }

    #[test]
    fn backward_and_forward_references() {
        // the group comes first in the request but references users created after it
        assert_eq!(
            order(json!([
                group("g", &["bulkId:a", "bulkId:b"]),
                user("a"),
                user("b"),
                user("c")
            ])),
            vec![(1, false), (2, false), (0, false), (3, false)]
        );
        // chains: a PATCH of the group created by a later POST that references a later user
        assert_eq!(
            order(json!([
                {"method": "DELETE", "path": "/Groups/bulkId:g"},
                group("g", &["bulkId:u"]),
                user("u"),
            ])),
            vec![(2, false), (1, false), (0, false)]
        );
    }

    #[test]
    fn circular_references_are_found() {
        // RFC 7644 §3.7.1's example: two groups that are members of each other
        assert_eq!(
            order(json!([
                group("qwerty", &["bulkId:ytrewq"]),
                group("ytrewq", &["bulkId:qwerty"]),
                user("u")
            ])),
            vec![(1, true), (0, true), (2, false)]
        );
        // a group that is its own member
        assert_eq!(order(json!([group("g", &["bulkId:g"])])), vec![(0, true)]);
        // a three-cycle, plus an operation that depends on the cycle without being in it
        let got = order(json!([
            group("a", &["bulkId:b"]),
            group("b", &["bulkId:c"]),
            group("c", &["bulkId:a"]),
            group("d", &["bulkId:a"]),
        ]));
        let circular: Vec<usize> = got.iter().filter(|s| s.1).map(|s| s.0).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got.last(), Some(&(3, false)));
        let mut c = circular.clone();
        c.sort_unstable();
        assert_eq!(c, vec![0, 1, 2]);
    }

    #[test]
    fn cycle_found_through_an_already_finished_node() {
        // r -> y -> r, and r -> x -> y: x is in the cycle only through y
        let deps = vec![vec![1, 2], vec![0], vec![1]];
        assert_eq!(in_cycles(&deps), vec![true, true, true]);
        let deps = vec![vec![1], vec![], vec![1]];
        assert_eq!(in_cycles(&deps), vec![false, false, false]);
    }

    #[test]
    fn long_chains_do_not_recurse() {
        // op i references op i+1: 100,000 deep
        let n = 100_000;
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        let order = post_order(&deps);
        assert_eq!(order.first(), Some(&(n - 1)));
        assert_eq!(order.last(), Some(&0));
        assert!(in_cycles(&deps).iter().all(|c| !c));
    }

    #[test]
    fn references_to_non_post_bulk_ids_do_not_order() {
        // a bulkId on a DELETE names nothing that can be referenced
        let got = order(json!([
            group("g", &["bulkId:d"]),
            {"method": "DELETE", "path": "/Users/1", "bulkId": "d"},
        ]));
        assert_eq!(got, vec![(0, false), (1, false)]);
    }
}
