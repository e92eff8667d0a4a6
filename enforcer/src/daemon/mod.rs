//! `enforcer run`: checks the host, loads and attaches the programs with
//! the first policy, then serves the control socket and streams events
//! until SIGTERM or SIGINT.

pub mod config;
mod kernel_events;
mod logger;
mod options;
mod owner;
mod process;
mod server;
mod start;
pub mod takeover;

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use crate::{
    events::{Event, EventBody, hub::EventHub, rules::RuleBook},
    kernel::programs::ProgramsError,
};
pub use logger::init_logging;
pub use options::RunOptions;
use owner::{Owner, Reach, StartError};
use process::StopSignals;
pub use process::share_one_allocator_arena;
use start::{FirstPolicy, Host, Inheritance, LoadedKernel, Outputs};
pub use start::{FirstPolicyError, HostError, InheritError, OutputError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    FirstPolicy(#[from] FirstPolicyError),
    #[error(transparent)]
    Inherit(#[from] InheritError),
    #[error("the policy cannot be compiled: {0}")]
    Compile(#[from] crate::compile::CompileError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Programs(#[from] ProgramsError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Runtime(#[source] std::io::Error),
}

/// Everything a user can fix is checked before anything touches the
/// kernel; the programs attach only with the first generation in place.
pub async fn run(options: RunOptions) -> Result<(), DaemonError> {
    process::lift_memlock_limit();
    // Listening from the start turns an early SIGTERM into a clean stop.
    let stop = StopSignals::listen().map_err(DaemonError::Runtime)?;
    let Host {
        capabilities,
        target,
        cgroup_path,
        access,
    } = start::check_host(&options)?;
    let FirstPolicy {
        policy,
        sha256,
        store,
    } = start::first_policy(&options, &access.trusted)?;
    let Inheritance {
        pins,
        earlier,
        lineage,
    } = start::inherit(&options)?;
    let (resolution, compiled) = start::compile_first(&policy, lineage.domain_seed)?;
    let Outputs {
        listener,
        socket_file: _socket_file,
        events: outputs,
    } = start::open_outputs(&options, access.group).await?;
    let hub = Arc::new(EventHub::new(outputs));
    let rules = Arc::new(RuleBook::default());
    let LoadedKernel {
        kernel,
        events,
        instance,
    } = start::load_kernel(&capabilities, pins, &policy, &compiled, &options)?;
    let (commands, receiver) = mpsc::channel(16);
    let cgroup = target.display().to_string();
    let reach = Reach {
        cgroup: target,
        cgroup_path,
        hash_roots: options.hash_roots,
        store,
        sha256,
    };
    let owner = Owner::start(
        kernel,
        (policy, resolution, compiled),
        reach,
        lineage,
        rules.clone(),
        hub.clone(),
        commands.downgrade(),
    )?;
    announce(&owner, &hub, cgroup);
    let owner_thread = std::thread::Builder::new()
        .name("enforcer-owner".into())
        .spawn(move || owner.run(receiver))
        .map_err(DaemonError::Runtime)?;
    // This daemon's programs are attached; the earlier ones can go.
    if !earlier.is_empty() {
        let report = takeover::finish(&earlier, &instance, &hub);
        hub.publish(&Event::now(EventBody::Takeover(report)));
    }
    let reader = tokio::spawn(kernel_events::read_kernel_events(
        events,
        rules,
        hub.clone(),
    ));
    let unloaded = Arc::new(Notify::new());
    let server = tokio::spawn(server::serve(
        listener,
        commands,
        hub.clone(),
        unloaded.clone(),
        access,
    ));
    process::notify_systemd_ready();

    let reason = tokio::select! {
        reason = stop.received() => reason,
        () = unloaded.notified() => "unloaded".to_string(),
    };
    // Dropping the server drops the last command sender; the owner then
    // returns. Its programs stay attached through their pins, unless they
    // were unloaded.
    server.abort();
    let _ = server.await;
    let _ = owner_thread.join();
    reader.abort();
    hub.publish(&Event::now(EventBody::Shutdown { reason }));
    Ok(())
}

/// The `ready` event, then every family this kernel refused, so that a
/// fleet can alert on it whether or not the first policy needs it.
fn announce(owner: &Owner, hub: &EventHub, cgroup: String) {
    hub.publish(&Event::now(EventBody::Ready {
        generation: owner.generation(),
        cgroup,
        programs: owner.program_names(),
        exec_enforcement: owner.exec_enforcement(),
        self_protection: owner.self_protection(),
        rules: owner.rule_count(),
        families: owner.families(),
        programs_verified: owner.verified(),
    }));
    for degradation in owner.degradations() {
        hub.publish(&Event::now(EventBody::Degraded(degradation)));
    }
}
