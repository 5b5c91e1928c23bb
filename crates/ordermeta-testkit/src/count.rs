//! Counting the winners of races: "each order claimed exactly once".

use std::collections::BTreeMap;

/// How many times each item occurs.
pub fn tally<I, T>(items: I) -> BTreeMap<T, usize>
where
    I: IntoIterator<Item = T>,
    T: Ord,
{
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// Asserts that `items` holds exactly `expected` distinct items, each exactly once.
pub fn assert_each_once<I, T>(items: I, expected: usize)
where
    I: IntoIterator<Item = T>,
    T: Ord + std::fmt::Debug,
{
    let counts = tally(items);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "won more than once: {twice:?}");
    assert_eq!(counts.len(), expected, "every item won exactly once");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_each_once(["a", "b"], 2);
        assert_eq!(tally(["a", "a"]).get("a"), Some(&2));
        let twice = std::panic::catch_unwind(|| assert_each_once(["a", "a"], 1));
        assert!(twice.is_err());
    }
}
