//! Each rule checked against steps computed by hand (PyTorch's formulas), the schedules at
//! chosen rounds, clipping, and what a change of settings keeps.

use super::*;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn settings(kind: OptimizerKind) -> OptimizerSettings {
    OptimizerSettings::for_kind(kind)
}

fn one_param(settings: OptimizerSettings, lr: f32, p: f32, gradients: &[f32]) -> (f32, Optimizer) {
    let mut optimizer = Optimizer::with_settings(settings, lr, 1);
    let mut params = [p];
    for g in gradients {
        optimizer.step(&mut params, &[*g]).unwrap();
    }
    (params[0], optimizer)
}

#[test]
fn sgd_momentum_matches_hand_computed_steps() {
    // v1 = 0.5, p1 = 1 − 0.1·0.5 = 0.95; v2 = 0.9·0.5 + 0.5 = 0.95, p2 = 0.95 − 0.095.
    let (p, optimizer) = one_param(settings(OptimizerKind::Sgd), 0.1, 1.0, &[0.5, 0.5]);
    assert!(close(p, 0.855), "{p}");
    assert!(close(optimizer.first[0], 0.95));
    assert!(optimizer.second.is_empty());
}

#[test]
fn nesterov_looks_ahead_along_the_velocity() {
    // Step 1: v = 0.5, update g + μv = 0.95 → p = 0.905. Step 2: v = 0.95, update
    // 0.5 + 0.855 = 1.355 → p = 0.7695.
    let nesterov = OptimizerSettings {
        nesterov: true,
        ..settings(OptimizerKind::Sgd)
    };
    let (p, _) = one_param(nesterov, 0.1, 1.0, &[0.5]);
    assert!(close(p, 0.905), "{p}");
    let (p, _) = one_param(nesterov, 0.1, 1.0, &[0.5, 0.5]);
    assert!(close(p, 0.7695), "{p}");
}

#[test]
fn sgd_weight_decay_is_added_to_the_gradient() {
    // No momentum: g' = 0.5 + 0.1·1 = 0.6, p = 1 − 0.1·0.6.
    let decayed = OptimizerSettings {
        momentum: 0.0,
        weight_decay: 0.1,
        ..settings(OptimizerKind::Sgd)
    };
    let (p, _) = one_param(decayed, 0.1, 1.0, &[0.5]);
    assert!(close(p, 0.94), "{p}");
}

#[test]
fn adam_matches_hand_computed_steps() {
    // Bias-corrected: m̂ = 0.5, v̂ = 0.25 on both steps, so each moves lr·0.5/0.5 = lr.
    let (p, optimizer) = one_param(settings(OptimizerKind::Adam), 0.01, 1.0, &[0.5]);
    assert!(close(p, 0.99), "{p}");
    assert!(close(optimizer.first[0], 0.05));
    assert!(close(optimizer.second[0], 0.00025));
    let (p, optimizer) = one_param(settings(OptimizerKind::Adam), 0.01, 1.0, &[0.5, 0.5]);
    assert!(close(p, 0.98), "{p}");
    assert_eq!(optimizer.step, 2);
    assert!(close(optimizer.first[0], 0.095));
    assert!(close(optimizer.second[0], 0.000_499_75));
    // Adam's weight decay is L2: the moments see g + wd·p = 0.6.
    let l2 = OptimizerSettings {
        weight_decay: 0.1,
        ..settings(OptimizerKind::Adam)
    };
    let (_, optimizer) = one_param(l2, 0.01, 1.0, &[0.5]);
    assert!(close(optimizer.first[0], 0.06));
}

#[test]
fn adamw_decays_the_params_before_the_step() {
    // p ← 1·(1 − 0.01·0.1) = 0.999, then the Adam step of lr: 0.989. The moments see g alone.
    let decoupled = OptimizerSettings {
        weight_decay: 0.1,
        ..settings(OptimizerKind::AdamW)
    };
    let (p, optimizer) = one_param(decoupled, 0.01, 1.0, &[0.5]);
    assert!(close(p, 0.989), "{p}");
    assert!(close(optimizer.first[0], 0.05));
}

#[test]
fn clipping_scales_the_gradient_to_the_global_norm() {
    let clipped = OptimizerSettings {
        momentum: 0.0,
        clip_norm: 1.0,
        ..settings(OptimizerKind::Sgd)
    };
    let mut optimizer = Optimizer::with_settings(clipped, 1.0, 2);
    let mut params = [0.0f32, 0.0];
    let report = optimizer.step(&mut params, &[3.0, 4.0]).unwrap();
    assert_eq!(report.gradient_norm, 5.0);
    assert!(report.clipped);
    assert!(
        close(params[0], -0.6) && close(params[1], -0.8),
        "{params:?}"
    );
    // Under the limit the gradient is untouched.
    let loose = OptimizerSettings {
        clip_norm: 10.0,
        ..clipped
    };
    let mut optimizer = Optimizer::with_settings(loose, 1.0, 2);
    let mut params = [0.0f32, 0.0];
    let report = optimizer.step(&mut params, &[3.0, 4.0]).unwrap();
    assert!(!report.clipped);
    assert_eq!(params, [-3.0, -4.0]);
}

#[test]
fn schedules_give_the_rate_of_each_round() {
    let warmup: LrSchedule = "warmup:4".parse().unwrap();
    let rates: Vec<f32> = (1..=5).map(|r| warmup.rate(1.0, r)).collect();
    assert_eq!(rates, [0.25, 0.5, 0.75, 1.0, 1.0]);
    let cosine: LrSchedule = "cosine:10".parse().unwrap();
    assert!(close(cosine.rate(2.0, 5), 1.0));
    assert_eq!(cosine.rate(2.0, 10), 0.0);
    assert_eq!(cosine.rate(2.0, 11), 0.0);
    let both: LrSchedule = "Cosine:2:12".parse().unwrap();
    assert_eq!(both.rate(1.0, 1), 0.5);
    assert_eq!(both.rate(1.0, 2), 1.0);
    assert!(close(both.rate(1.0, 7), 0.5));
    assert_eq!(both.rate(1.0, 12), 0.0);
    assert_eq!(LrSchedule::Constant.rate(0.3, 1000), 0.3);
    for text in ["constant", "warmup:4", "cosine:10", "cosine:2:12"] {
        let parsed: LrSchedule = text.parse().unwrap();
        assert_eq!(parsed.to_string(), text);
    }
    for bad in [
        "warmup:0",
        "cosine:5:5",
        "linear",
        "warmup",
        "cosine:1:2:3",
        "warmup:-1",
    ] {
        assert!(bad.parse::<LrSchedule>().is_err(), "{bad} accepted");
    }
}

#[test]
fn a_change_of_family_restarts_the_state_and_a_change_within_keeps_it() {
    let (_, mut optimizer) = one_param(settings(OptimizerKind::Adam), 0.01, 1.0, &[0.5]);
    optimizer.configure(&settings(OptimizerKind::AdamW));
    assert_eq!(optimizer.step, 1);
    assert!(close(optimizer.first[0], 0.05));
    optimizer.configure(&settings(OptimizerKind::Sgd));
    assert_eq!((optimizer.step, optimizer.first[0]), (0, 0.0));
    assert!(optimizer.second.is_empty());
    optimizer.configure(&settings(OptimizerKind::Adam));
    assert_eq!(optimizer.second, [0.0]);
    assert_eq!(optimizer.learning_rate(), 0.01);
}

#[test]
fn settings_validate_and_round_trip() {
    let bad = [
        OptimizerSettings {
            momentum: 1.0,
            ..OptimizerSettings::default()
        },
        OptimizerSettings {
            weight_decay: -0.1,
            ..OptimizerSettings::default()
        },
        OptimizerSettings {
            clip_norm: f32::NAN,
            ..OptimizerSettings::default()
        },
    ];
    for settings in bad {
        assert!(settings.validate().is_err(), "{settings:?}");
    }
    let good = OptimizerSettings {
        kind: OptimizerKind::Sgd,
        momentum: 0.5,
        nesterov: true,
        weight_decay: 0.01,
        clip_norm: 2.0,
    };
    let mut out = crate::codec::Writer::new();
    good.encode_to(&mut out);
    let bytes = out.into_bytes();
    let decoded = OptimizerSettings::decode_from(&mut crate::codec::Reader::new(&bytes));
    assert_eq!(decoded, Ok(good));
    let mut wrong = bytes.clone();
    wrong[0] = 9;
    assert!(OptimizerSettings::decode_from(&mut crate::codec::Reader::new(&wrong)).is_err());
    assert_eq!("AdamW".parse::<OptimizerKind>(), Ok(OptimizerKind::AdamW));
    assert!("lamb".parse::<OptimizerKind>().is_err());
}

#[test]
fn every_rule_reaches_the_minimum_of_a_quadratic() {
    for (kind, lr) in [
        (OptimizerKind::Sgd, 0.05),
        (OptimizerKind::Adam, 0.1),
        (OptimizerKind::AdamW, 0.1),
    ] {
        // f(x) = Σ (x_i − 3)², gradient 2(x − 3).
        let mut x = vec![0.0f32, 10.0, -4.0];
        let mut optimizer = Optimizer::new(kind, lr, x.len());
        for _ in 0..500 {
            let g: Vec<f32> = x.iter().map(|v| 2.0 * (v - 3.0)).collect();
            optimizer.step(&mut x, &g).unwrap();
        }
        let worst = x.iter().map(|v| (v - 3.0).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-2, "{kind}: {worst}");
    }
    let mut optimizer = Optimizer::new(OptimizerKind::Adam, 0.1, 3);
    assert!(optimizer.step(&mut [0.0; 2], &[0.0; 2]).is_err());
}
