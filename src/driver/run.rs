//! Async access to a `Hypervisor`: blocking calls off the runtime, one call per object at once;
//! and what to say when a connection cannot be opened [I/O].

use std::sync::Arc;

use super::{DriverError, Hypervisor};

/// A shared connection, as every operation holds it.
pub type Hv = Arc<dyn Hypervisor>;

/// Runs a blocking hypervisor call off the async runtime.
pub async fn blocking<T, F>(hv: &Hv, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Hypervisor) -> Result<T, DriverError> + Send + 'static,
{
    let hv = hv.clone();
    Ok(tokio::task::spawn_blocking(move || f(hv.as_ref())).await??)
}

/// Runs `f` on every name (domains, networks) at once, each off the runtime; the results come
/// in the order the calls end.
pub async fn for_all<F, T>(hv: &Hv, names: &[String], f: F) -> Vec<(String, anyhow::Result<T>)>
where
    F: Fn(&dyn Hypervisor, &str) -> Result<T, DriverError> + Send + Sync + Clone + 'static,
    T: Send + 'static,
{
    for_all_on(names.iter().map(|n| (n.clone(), hv.clone())), f).await
}

/// [`for_all`] with each name's own connection (a lab across hosts).
pub async fn for_all_on<F, T>(
    calls: impl IntoIterator<Item = (String, Hv)>,
    f: F,
) -> Vec<(String, anyhow::Result<T>)>
where
    F: Fn(&dyn Hypervisor, &str) -> Result<T, DriverError> + Send + Sync + Clone + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (d, hv) in calls {
        let f = f.clone();
        set.spawn(async move {
            let d2 = d.clone();
            let r = blocking(&hv, move |h| f(h, &d2)).await;
            (d, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => out.push(x),
            Err(e) => out.push((String::new(), Err(anyhow::Error::new(e)))),
        }
    }
    out
}

/// The connection error with what to do about it.
pub fn explain_connect(e: DriverError) -> anyhow::Error {
    if refused_access(&crate::error_chain(&e)) {
        anyhow::Error::new(e).context(
            "libvirt refused this user (permission denied); fix: run dcos-lab as root, or add the user to the `libvirt` group and log in again",
        )
    } else {
        anyhow::Error::new(e).context(
            "libvirt is not reachable; fix: run scripts/setup-host.sh (installs and starts libvirtd), or check --uri",
        )
    }
}

/// Whether libvirt's error says the daemon is there but will not let this user in: the
/// socket's permissions, or an access check that needs polkit (which needs the system bus).
pub fn refused_access(error: &str) -> bool {
    [
        "Permission denied",
        "authentication",
        "polkit",
        "system bus",
    ]
    .iter()
    .any(|s| error.contains(s))
}

/// Runs every future at once on this task and returns their outputs in order (for futures that
/// borrow, which `JoinSet` cannot take).
pub async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
