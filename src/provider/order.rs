//! The order of a batch of changes where it matters to a provider: a manager is created
//! before the people who report to them, so the reference to the manager can be set.

use std::collections::HashMap;

/// The level of each item of a batch: 0 for an item that waits on no one, otherwise one more
/// than the level of the manager it waits on. `items[i]` is `Some((userName, manager's
/// userName))` for a user creation and `None` for anything else; userNames compare without
/// regard to case. A manager chain that loops is broken where the walk finds the loop (its
/// first member goes without waiting).
pub fn manager_levels(items: &[Option<(&str, Option<&str>)>]) -> Vec<usize> {
    let created: HashMap<String, usize> =
        items.iter().enumerate().filter_map(|(i, item)| item.map(|(user, _)| (user.to_lowercase(), i))).collect();
    let manager_of = |i: usize| {
        let (_, manager) = items[i]?;
        created.get(&manager?.to_lowercase()).copied()
    };
    let mut level: Vec<Option<usize>> = vec![None; items.len()];
    // `walked[i] == start` when the walk from `start` passed `i`: a loop costs no search.
    let mut walked: Vec<usize> = vec![usize::MAX; items.len()];
    let mut chain = Vec::new();
    for start in 0..items.len() {
        // Walk up the manager chain to a known level, a root or a loop.
        chain.clear();
        chain.push(start);
        walked[start] = start;
        let mut base = 0;
        let mut cur = start;
        while level[cur].is_none() {
            match manager_of(cur) {
                Some(m) if let Some(l) = level[m] => {
                    base = l + 1;
                    break;
                }
                Some(m) if walked[m] != start => {
                    walked[m] = start;
                    chain.push(m);
                    cur = m;
                }
                _ => break,
            }
        }
        for (depth, &i) in chain.iter().rev().enumerate() {
            level[i].get_or_insert(base + depth);
        }
    }
    level.into_iter().map(Option::unwrap_or_default).collect()
}

/// The indices of `items` in an order that creates managers first, otherwise keeping the
/// batch's own order (see [`manager_levels`]).
pub fn managers_first(items: &[Option<(&str, Option<&str>)>]) -> Vec<usize> {
    let levels = manager_levels(items);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| levels[i]);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_are_created_before_their_reports() {
        // d -> c -> b -> a (a at the top, "C" in another case), e reports to someone not
        // created here, f and g manage each other, h manages itself, x is not a creation.
        let items = [
            Some(("d", Some("C"))),
            Some(("a", None)),
            Some(("b", Some("a"))),
            Some(("c", Some("b"))),
            Some(("e", Some("elsewhere"))),
            Some(("f", Some("g"))),
            Some(("g", Some("f"))),
            Some(("h", Some("h"))),
            None,
        ];
        let levels = manager_levels(&items);
        assert_eq!(&levels[..5], &[3, 0, 1, 2, 0]);
        // The loop is broken: one of the two goes first.
        assert_eq!((levels[5].min(levels[6]), levels[5].max(levels[6])), (0, 1));
        assert_eq!(&levels[7..], &[0, 0]);
        let order = managers_first(&items);
        let pos = |i: usize| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(1) < pos(2) && pos(2) < pos(3) && pos(3) < pos(0));
        // Otherwise the batch keeps its order.
        assert!(pos(4) < pos(7) && pos(7) < pos(8));
        assert_eq!(order.len(), items.len());
    }

    #[test]
    fn every_member_of_a_long_chain_gets_its_level() {
        let names: Vec<String> = (0..20_000).map(|i| format!("u{i}")).collect();
        // u0 reports to u1, u1 to u2, ...: the last is the root.
        let items: Vec<_> =
            (0..names.len()).map(|i| Some((names[i].as_str(), names.get(i + 1).map(String::as_str)))).collect();
        let levels = manager_levels(&items);
        assert!(levels.iter().enumerate().all(|(i, &l)| l == names.len() - 1 - i));
    }
}
