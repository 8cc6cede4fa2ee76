//! Renders the CRDs (Broker, Trigger, KafkaSource, KafkaSink, NatsSource, NatsSink) from the Rust types.
//!
//! `crdgen DIR` writes them into DIR (the repository keeps them in `deploy/crds/`);
//! `crdgen --check DIR` exits 1 when a file in DIR differs from what the types render (CI drift check);
//! `crdgen` alone prints them to stdout as one multi-document YAML.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let crds = switchyard_kube::crds::rendered_crds();
    match args.as_slice() {
        [] => {
            for (_, yaml) in &crds {
                println!("---\n{yaml}");
            }
            ExitCode::SUCCESS
        }
        [flag, dir] if flag == "--check" => {
            let mut ok = true;
            for (name, yaml) in &crds {
                let path = std::path::Path::new(dir).join(name);
                match std::fs::read_to_string(&path) {
                    Ok(text) if text == *yaml => {}
                    Ok(_) => {
                        eprintln!(
                            "{} differs from the Rust types; run crdgen {dir}",
                            path.display()
                        );
                        ok = false;
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", path.display());
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        [dir] if !dir.starts_with('-') => {
            for (name, yaml) in &crds {
                let path = std::path::Path::new(dir).join(name);
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(1);
                }
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: crdgen [--check] [DIR]");
            ExitCode::from(2)
        }
    }
}
