//! `Model::self_test()` catches a corrupted weight: build.rs generates the mlp network with
//! its self-test data twice, once as compiled and once with one weight bit flipped.

mod intact {
    #![allow(dead_code)]
    include!(concat!(env!("OUT_DIR"), "/mlp_self_test.rs"));
}

mod corrupt {
    #![allow(dead_code)]
    include!(concat!(env!("OUT_DIR"), "/mlp_self_test_corrupt.rs"));
}

#[test]
fn self_test_passes_intact_and_fails_on_a_corrupted_weight() {
    assert!(intact::Model::new().self_test());
    assert!(!corrupt::Model::new().self_test());
}

#[test]
fn self_test_leaves_run_usable() {
    // self_test overwrites the arena; run afterwards still computes the same output.
    let mut m = intact::Model::new();
    let x = [0.25f32; intact::INPUT_LEN];
    let (mut before, mut after) = ([0.0; intact::OUTPUT_LEN], [0.0; intact::OUTPUT_LEN]);
    m.run(&x, &mut before);
    assert!(m.self_test());
    m.run(&x, &mut after);
    assert_eq!(before, after);
}
