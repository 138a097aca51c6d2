//! Arbitrary bytes as a `--weights` file for LeNet-5, through `weights::load_into`, the
//! function the CLI and the app's worker call: the header check against the file's size,
//! libtorch's safetensors reader, the key/shape/dtype check, the "looks like another
//! architecture" guess, the NaN scan and the swap. A refused file must leave the model as
//! it was.
#![no_main]

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use convscope_core::executor::{Model, WeightsOrigin};
use libfuzzer_sys::fuzz_target;
use tch::Device;

struct State {
    model: Model,
    /// The file each input is written to (the loader reads paths, as the CLI does).
    path: PathBuf,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

fn fresh_model() -> Model {
    let spec = convscope_core::zoo::find("lenet5").expect("lenet5 is in the zoo");
    Model::random(spec.graph(), Device::Cpu, 1).expect("lenet5 builds")
}

fuzz_target!(
    init: {
        tch::set_num_threads(1);
        let path = std::env::temp_dir().join(format!("convscope-fuzz-{}.safetensors", std::process::id()));
        STATE.get_or_init(|| Mutex::new(State { model: fresh_model(), path }));
    },
    |bytes: &[u8]| {
        let mut state = STATE.get().expect("set in init").lock().unwrap_or_else(|e| e.into_inner());
        let State { model, path } = &mut *state;
        if *model.origin() != (WeightsOrigin::Random { seed: 1 }) {
            *model = fresh_model();
        }
        std::fs::write(&*path, bytes).expect("writing the input file");
        let before: Vec<tch::Tensor> = model.params().iter().map(|t| t.detach().copy()).collect();
        match convscope_core::weights::load_into(model, path) {
            Ok(_) => assert!(matches!(model.origin(), WeightsOrigin::File(_))),
            Err(_) => {
                assert_eq!(*model.origin(), WeightsOrigin::Random { seed: 1 }, "a refused file changed the origin");
                for (now, was) in model.params().iter().zip(&before) {
                    assert!(now.equal(was), "a refused file changed the weights");
                }
            }
        }
    }
);
