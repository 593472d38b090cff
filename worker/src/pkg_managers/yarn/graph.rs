//! The dependency graph of a yarn lockfile, v1 or Berry: a dependency `name: range` is the
//! entry one of whose keys (descriptors) is `name@range`, yarn's own rule. Each reader knows its
//! keys and which entries the report holds; this turns the references into the
//! [`LocationGraph`] npm's report reads.

use crate::pkg_managers::npm::lockfile::LocationGraph;

/// The graph of a lockfile's entries: `resolve(name, range)` is the index of the entry a
/// reference names, `locations[i]` the location the report knows entry `i` by (None: not a
/// dependency of the report, e.g. a workspace), `roots` the package's own references and
/// `references` each entry's (`(entry index, name, range)`). A reference that names no
/// entry, or one the report does not hold, is left out: the lockfile was checked already.
pub fn location_graph<'a>(
    resolve: impl Fn(&str, &str) -> Option<usize>,
    locations: &[Option<String>],
    roots: impl IntoIterator<Item = (&'a str, &'a str)>,
    references: impl IntoIterator<Item = (usize, &'a str, &'a str)>,
) -> LocationGraph {
    let target = |name: &str, range: &str| {
        resolve(name, range).and_then(|j| locations.get(j).cloned().flatten())
    };
    let mut graph = LocationGraph {
        roots: roots
            .into_iter()
            .filter_map(|(name, range)| target(name, range))
            .collect(),
        ..LocationGraph::default()
    };
    for (from, name, range) in references {
        let Some(Some(from)) = locations.get(from) else {
            continue;
        };
        let targets = graph.edges.entry(from.clone()).or_default();
        targets.extend(target(name, range).filter(|to| to != from));
    }
    graph
}
