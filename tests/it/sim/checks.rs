//! The checks after quiescence.

use super::*;

/// After quiescence: both sides equal, every version that should be there is, no superseded
/// one is, and one more pass plans nothing.
pub(super) async fn check_end(env: &Env, model: &Model) -> Result<(), String> {
    let l: BTreeMap<String, Vec<u8>> = tree(&env.local)
        .into_iter()
        .filter(|(p, _)| !p.ends_with('/'))
        .collect();
    let r = env.sim.tree(ROOT);
    if l != r {
        let show = |m: &BTreeMap<String, Vec<u8>>, p: &String| {
            m.get(p).map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let differ: Vec<String> = l
            .keys()
            .chain(r.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| l.get(*p) != r.get(*p))
            .map(|p| format!("{p}: local {:?}, server {:?}", show(&l, p), show(&r, p)))
            .collect();
        return Err(format!("the sides differ:\n  {}", differ.join("\n  ")));
    }
    // Each version by its number: `keep v1`, `a.txt v7`.
    let name = |b: &Vec<u8>| {
        String::from_utf8_lossy(b)
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let both: Vec<String> = l.iter().map(|(p, b)| format!("{p}: {}", name(b))).collect();
    let both = both.join(", ");
    for (path, bytes) in &l {
        let key = (path.clone(), bytes.clone());
        let may_return = model.may_return.contains(&key) || model.returns_of_a_lost_base.contains(&key);
        if model.places.get(&key).is_some_and(|p| !p.wanted) && !may_return {
            return Err(format!(
                "{path} holds {}, which a user replaced, deleted or moved away (both sides: {both})",
                name(bytes)
            ));
        }
    }
    let present: BTreeSet<&Vec<u8>> = l.values().collect();
    let window = env.sim.window_losses.lock().expect("losses").clone();
    for ((path, v), place) in &model.places {
        if place.wanted && !present.contains(v) && !window.contains(v) {
            return Err(format!("{} put at {path} was lost (both sides: {both})", name(v)));
        }
    }
    let never = CancellationToken::new();
    let folder = &env.config.folders[0];
    let prepared = engine::prepare(
        &env.config,
        folder,
        &env.connector,
        env.options(Scope::Full),
        &never,
    )
    .await
    .map_err(|e| format!("the last look failed: {e}"))?;
    if let Some(a) = prepared.plan().changes().next() {
        return Err(format!("one more pass would still do: {a}"));
    }
    prepared.close().await;
    Ok(())
}
