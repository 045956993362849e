//! The second pass of `cargo xtask test`: the queue's tests with their stores on a Redis
//! Cluster. Its `cargo test` arguments are the user's, with the package choice narrowed to the
//! queue; none when the user picked packages without the queue.

/// What the queue's tests read for the cluster's nodes (`services/queue/tests/support`).
pub const CLUSTER_VAR: &str = "QUEUE_TEST_REDIS_CLUSTER";

const QUEUE: &str = "queue";

/// Whether `cargo_args` pick packages (`-p`/`--package`) before the test binaries' own `--`.
pub fn selects_packages(cargo_args: &[String]) -> bool {
    !packages(cargo_args).0.is_empty()
}

/// The cluster pass's `cargo test` arguments, or `None` when the user's arguments pick
/// packages and the queue is not one of them.
pub fn arguments(cargo_args: &[String]) -> Option<Vec<String>> {
    let (picked, others) = packages(cargo_args);
    if !picked.is_empty() && !picked.iter().any(|package| package == QUEUE) {
        return None;
    }
    let mut arguments = vec!["--package".to_owned(), QUEUE.to_owned()];
    arguments.extend(others);
    Some(arguments)
}

/// The packages `cargo_args` pick, and the other arguments (`--workspace` and `--all`
/// dropped, everything from `--` on kept as it is).
fn packages(cargo_args: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut picked, mut others) = (Vec::new(), Vec::new());
    let mut args = cargo_args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--" => {
                others.push(arg.clone());
                others.extend(args.by_ref().cloned());
            }
            "-p" | "--package" => picked.extend(args.next().cloned()),
            "--workspace" | "--all" => {}
            other => match other
                .strip_prefix("--package=")
                .or_else(|| other.strip_prefix("-p"))
            {
                Some(package) => picked.push(package.trim_start_matches('=').to_owned()),
                None => others.push(arg.clone()),
            },
        }
    }
    (picked, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn without_a_package_choice_the_cluster_pass_runs_the_queue_with_the_same_arguments() {
        let given = args(&["--locked", "--", "--test-threads=2"]);
        assert!(!selects_packages(&given));
        assert_eq!(
            arguments(&given),
            Some(args(&[
                "--package",
                "queue",
                "--locked",
                "--",
                "--test-threads=2"
            ]))
        );
    }

    #[test]
    fn a_package_choice_narrows_to_the_queue_or_skips_the_pass_without_it() {
        for given in [
            args(&["-p", "queue", "-p", "gateway"]),
            args(&["--package=queue"]),
            args(&["-pqueue", "--workspace"]),
        ] {
            assert!(selects_packages(&given), "{given:?}");
            assert_eq!(
                arguments(&given),
                Some(args(&["--package", "queue"])),
                "{given:?}"
            );
        }
        let gateway = args(&["-p", "gateway", "--", "-p", "queue"]);
        assert!(selects_packages(&gateway));
        assert_eq!(arguments(&gateway), None);
    }
}
