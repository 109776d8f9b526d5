//! The distributed round protocol computes exactly what the single-process simulation does:
//! three in-memory nodes (round cores, replicated state, trainers; no network — messages go
//! through their wire encoding in a queue, commands through a shared log) train with level
//! `all` and seed S and end with the params hash of `hashgrad train --workers 3 --seed S`.

use std::collections::{HashMap, VecDeque};

use hashgrad::cluster::receipt::{from_receipt, to_receipt};
use hashgrad::cluster::round::Action;
use hashgrad::cluster::{
    Applied, BlobHash, ClusterState, Command, ConsistencyLevel, Coordinator, RoundCommitted,
    RoundSettings, RuleSpec, TrainingConfig, TrainingMessage, WireLimits, Worker,
};
use hashgrad::codec::Encode;
use hashgrad::net::NodeId;
use hashgrad::raft::StateMachine;
use hashgrad::train::aggregate::{Reducer, Rule};
use hashgrad::train::optimizer::OptimizerKind;
use hashgrad::train::params::{vector_from_bytes, vector_to_bytes};
use hashgrad::train::setup::{Setup, ShardWorker};
use hashgrad::train::simulation::Simulation;
use hashgrad::train::{Dataset, StateHash, TrainConfig, Trainer};

struct Node {
    id: NodeId,
    trainer: Trainer,
    shard: ShardWorker,
    worker: Worker,
    coordinator: Coordinator,
    state: ClusterState,
    blobs: HashMap<BlobHash, Vec<u8>>,
    committed: Vec<RoundCommitted>,
}

struct Envelope {
    from: usize,
    to: usize,
    frame_type: u8,
    payload: Vec<u8>,
}

struct Cluster {
    setup: Setup,
    nodes: Vec<Node>,
    leader: usize,
    queue: VecDeque<Envelope>,
    log: Vec<Vec<u8>>,
    limits: WireLimits,
    now: u64,
}

fn rule_spec(rule: Rule) -> RuleSpec {
    match rule {
        Rule::Mean => RuleSpec::Mean,
        Rule::Median => RuleSpec::Median,
        Rule::TrimmedMean { trim } => RuleSpec::TrimmedMean { trim },
        Rule::Krum { byzantine, .. } => RuleSpec::Krum { byzantine },
        other => panic!("no spec for {other}"),
    }
}

impl Cluster {
    fn new(config: &TrainConfig, data: &Dataset) -> Cluster {
        let setup = Setup::new(config, data).unwrap();
        let training = TrainingConfig {
            learning_rate: config.learning_rate,
            rule: rule_spec(config.rule),
            consistency: ConsistencyLevel::All,
            round_deadline_ms: 1000,
            batch_size: config.batch,
            optimizer: hashgrad::train::optimizer::OptimizerSettings::for_kind(config.optimizer),
            lr_schedule: Default::default(),
        };
        let nodes: Vec<Node> = (0..config.workers)
            .map(|i| {
                let trainer =
                    Trainer::new(setup.initial.clone(), config.rule, Reducer::Cpu).unwrap();
                let id = NodeId([i as u8 + 1; 32]);
                Node {
                    id,
                    state: ClusterState::new(trainer.state_hash(), training.clone()),
                    trainer,
                    shard: setup.worker(i).unwrap(),
                    worker: Worker::new(id),
                    coordinator: Coordinator::new(100 + i as u64),
                    blobs: HashMap::new(),
                    committed: Vec::new(),
                }
            })
            .collect();
        let limits = WireLimits::for_params(nodes[0].trainer.params().len());
        Cluster {
            setup,
            nodes,
            leader: 0,
            queue: VecDeque::new(),
            log: Vec::new(),
            limits,
            now: 0,
        }
    }

    fn send(&mut self, from: usize, to: usize, message: &TrainingMessage) {
        self.queue.push_back(Envelope {
            from,
            to,
            frame_type: message.frame_type(),
            payload: message.encode(),
        });
    }

    fn index_of(&self, id: NodeId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// The leader announces the next round if it is idle.
    fn announce_if_idle(&mut self) {
        let leader = &mut self.nodes[self.leader];
        if !leader.coordinator.is_idle() {
            return;
        }
        let settings = RoundSettings::from_config(
            leader.state.config().training(),
            leader.trainer.params().len(),
        );
        let workers = self.nodes.iter().map(|n| n.id).collect();
        let leader = &mut self.nodes[self.leader];
        leader.coordinator.announce(
            self.now,
            leader.state.round() + 1,
            leader.state.params_hash(),
            workers,
            settings,
        );
    }

    /// Runs the leader's and workers' actions and delivers messages until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(action) = self.nodes[self.leader].coordinator.poll_action() {
                moved = true;
                self.leader_action(action);
            }
            for i in 0..self.nodes.len() {
                while let Some(action) = self.nodes[i].worker.poll_action() {
                    moved = true;
                    self.worker_action(i, action);
                }
            }
            if let Some(envelope) = self.queue.pop_front() {
                moved = true;
                self.deliver(envelope);
            }
            if !moved {
                return;
            }
        }
    }

    fn leader_action(&mut self, action: Action) {
        let l = self.leader;
        match action {
            Action::Announce(announce) => {
                for to in 0..self.nodes.len() {
                    self.send(l, to, &TrainingMessage::RoundAnnounce(announce.clone()));
                }
            }
            Action::Reduce(reduction) => {
                let node = &mut self.nodes[l];
                assert_eq!(node.trainer.state_hash(), reduction.params_hash);
                node.trainer.set_rule(reduction.rule);
                let reduced = node.trainer.reduce(&reduction.gradients()).unwrap();
                // Step a copy: the node's own trainer steps when the round commits, like every
                // other node's.
                let mut scratch =
                    Trainer::new(node.trainer.state().clone(), reduction.rule, Reducer::Cpu)
                        .unwrap();
                scratch.configure(&reduction.optimizer);
                scratch.set_learning_rate(reduction.learning_rate);
                scratch.step(&reduced).unwrap();
                let blob = vector_to_bytes(&reduced);
                let hash = BlobHash::of(&blob);
                node.blobs.insert(hash, blob);
                node.coordinator
                    .on_stepped(reduction.round, scratch.state_hash(), hash);
            }
            Action::Propose(command) => self.commit(command),
            other => panic!("no faults here, yet the leader asked for {other:?}"),
        }
    }

    fn worker_action(&mut self, i: usize, action: Action) {
        match action {
            Action::ComputeGradient {
                params_hash,
                worker_index,
                batch_size,
                round,
            } => {
                assert_eq!(worker_index, i, "a node's position is its shard");
                let node = &mut self.nodes[i];
                assert_eq!(node.trainer.state_hash(), params_hash);
                let loss = node
                    .shard
                    .compute(
                        node.trainer.model().expect("the MLP"),
                        node.trainer.params(),
                        &self.setup.train,
                        batch_size,
                    )
                    .unwrap();
                let values = node.shard.gradient().to_vec();
                node.worker.on_computed(round, params_hash, loss, values);
            }
            Action::SendGradient { to, gradient } => {
                let to = self.index_of(to);
                self.send(i, to, &TrainingMessage::Gradient(gradient));
            }
            other => panic!("unexpected worker action {other:?}"),
        }
    }

    fn deliver(&mut self, e: Envelope) {
        let message = TrainingMessage::decode(e.frame_type, &e.payload, &self.limits).unwrap();
        let from = self.nodes[e.from].id;
        match message {
            TrainingMessage::RoundAnnounce(announce) => {
                assert!(self.nodes[e.to].worker.on_announce(from, &announce));
            }
            TrainingMessage::Gradient(gradient) => {
                let now = self.now;
                self.nodes[e.to]
                    .coordinator
                    .on_gradient(now, from, gradient)
                    .unwrap();
            }
            other => panic!("unexpected message {other:?}"),
        }
    }

    /// Appends a command to the shared log and applies it on every node, which steps its
    /// trainer with the reduced gradient fetched by hash and checks the committed hash.
    fn commit(&mut self, command: Command) {
        self.log.push(command.to_bytes());
        let index = self.log.len() as u64;
        for i in 0..self.nodes.len() {
            self.nodes[i]
                .state
                .apply(index, &self.log[index as usize - 1]);
            for event in self.nodes[i].state.take_applied() {
                if let Applied::Round { round, .. } = &event {
                    self.step_node(i, round);
                }
                self.nodes[i].coordinator.on_applied(&event);
            }
        }
    }

    fn fetch_blob(&self, hash: BlobHash) -> Vec<u8> {
        let request = TrainingMessage::BlobRequest { hash };
        let holder = self
            .nodes
            .iter()
            .find(|n| n.blobs.contains_key(&hash))
            .unwrap();
        let TrainingMessage::BlobRequest { hash: asked } =
            TrainingMessage::decode(request.frame_type(), &request.encode(), &self.limits).unwrap()
        else {
            unreachable!()
        };
        let response = TrainingMessage::BlobResponse {
            hash: asked,
            data: holder.blobs.get(&asked).cloned(),
        };
        match TrainingMessage::decode(response.frame_type(), &response.encode(), &self.limits)
            .unwrap()
        {
            TrainingMessage::BlobResponse {
                data: Some(data), ..
            } => data,
            other => panic!("{other:?}"),
        }
    }

    fn step_node(&mut self, i: usize, round: &RoundCommitted) {
        let blob = self.fetch_blob(round.reduced_hash);
        let node = &mut self.nodes[i];
        let reduced = vector_from_bytes(&blob, node.trainer.params().len()).unwrap();
        assert_eq!(node.trainer.state_hash(), round.parent_hash);
        node.trainer.configure(&round.optimizer);
        node.trainer.set_learning_rate(round.learning_rate);
        node.trainer.step(&reduced).unwrap();
        assert_eq!(
            node.trainer.state_hash(),
            round.params_hash,
            "node {i} drifted at round {}",
            round.round
        );
        node.committed.push(round.clone());
    }

    fn run_until(&mut self, rounds: u64) {
        while self.nodes[self.leader].state.round() < rounds {
            self.announce_if_idle();
            self.pump();
            self.now += 10;
        }
    }

    fn hashes(&self) -> Vec<StateHash> {
        self.nodes.iter().map(|n| n.trainer.state_hash()).collect()
    }
}

fn simulate(config: &TrainConfig, data: &Dataset, rounds: u64) -> (StateHash, Vec<f32>) {
    let mut simulation = Simulation::new(config, data, Reducer::Cpu).unwrap();
    let losses = (0..rounds)
        .map(|_| simulation.run_round().unwrap().loss)
        .collect();
    (simulation.trainer().state_hash(), losses)
}

fn check_same_as_simulation(config: TrainConfig, rounds: u64) {
    let data = Dataset::digits().unwrap();
    let (expected, losses) = simulate(&config, &data, rounds);
    let mut cluster = Cluster::new(&config, &data);
    cluster.run_until(rounds);
    assert_eq!(cluster.hashes(), vec![expected; 3], "{config:?}");
    for node in &cluster.nodes {
        assert_eq!(node.state.round(), rounds);
        assert_eq!(node.state.params_hash(), expected);
        let committed_losses: Vec<f32> = node.committed.iter().map(|r| r.loss).collect();
        assert_eq!(
            committed_losses, losses,
            "round losses as `hashgrad train` reports them"
        );
        assert_eq!(node.committed, cluster.nodes[0].committed);
    }
    // Every node makes the same receipt for each round, and a receipt decodes back.
    for round in &cluster.nodes[0].committed {
        let receipt = to_receipt(round);
        for node in &cluster.nodes {
            let theirs = to_receipt(node.state.committed(round.round).unwrap());
            assert_eq!(theirs.id(), receipt.id());
        }
        assert_eq!(&from_receipt(&receipt).unwrap(), round);
    }
    let counters = cluster.nodes[0].coordinator.counters();
    assert_eq!(counters.refused(), 0);
    assert_eq!(counters.rounds_abandoned, 0);
}

#[test]
fn three_nodes_at_level_all_end_with_the_simulations_params_hash() {
    let config = TrainConfig {
        workers: 3,
        seed: 7,
        ..TrainConfig::default()
    };
    check_same_as_simulation(config, 12);
}

#[test]
fn the_same_holds_for_sgd_and_a_robust_rule() {
    let config = TrainConfig {
        workers: 3,
        seed: 3,
        rule: Rule::Median,
        optimizer: OptimizerKind::Sgd,
        learning_rate: OptimizerKind::Sgd.default_learning_rate(),
        hidden: vec![16, 8],
        batch: 20,
        ..TrainConfig::default()
    };
    check_same_as_simulation(config, 8);
}

#[test]
fn a_leader_change_mid_round_changes_nothing() {
    let config = TrainConfig {
        workers: 3,
        seed: 11,
        ..TrainConfig::default()
    };
    let data = Dataset::digits().unwrap();
    let (expected, _) = simulate(&config, &data, 6);
    let mut cluster = Cluster::new(&config, &data);
    cluster.run_until(3);
    // Leader 0 announces round 4 and the workers compute and send; then leadership moves to
    // node 1 before node 0 reduces. Gradients in flight to node 0 are lost.
    cluster.announce_if_idle();
    while let Some(action) = cluster.nodes[0].coordinator.poll_action() {
        cluster.leader_action(action);
    }
    while let Some(e) = cluster.queue.pop_front() {
        let message = TrainingMessage::decode(e.frame_type, &e.payload, &cluster.limits).unwrap();
        if let TrainingMessage::RoundAnnounce(a) = message {
            let from = cluster.nodes[e.from].id;
            cluster.nodes[e.to].worker.on_announce(from, &a);
        }
        for i in 0..3 {
            while let Some(action) = cluster.nodes[i].worker.poll_action() {
                if let Action::ComputeGradient { .. } = action {
                    cluster.worker_action(i, action);
                }
            }
        }
    }
    cluster.nodes[0].coordinator.step_down();
    cluster.leader = 1;
    // The new leader announces round 4 again; workers resend their computed gradients
    // without drawing new batches, so the result is unchanged.
    cluster.run_until(6);
    assert_eq!(cluster.hashes(), vec![expected; 3]);
    assert_eq!(cluster.nodes[2].state.round(), 6);
}

#[test]
fn a_config_write_takes_effect_from_the_next_round_on_every_node() {
    let config = TrainConfig {
        workers: 3,
        seed: 5,
        ..TrainConfig::default()
    };
    let data = Dataset::digits().unwrap();
    let (undisturbed, _) = simulate(&config, &data, 4);
    let mut cluster = Cluster::new(&config, &data);
    cluster.run_until(2);
    cluster.commit(Command::ConfigPut {
        request: hashgrad::cluster::RequestId { client: 9, seq: 1 },
        key: "learning_rate".into(),
        value: "0.01".into(),
    });
    cluster.commit(Command::ConfigPut {
        request: hashgrad::cluster::RequestId { client: 9, seq: 2 },
        key: "consistency".into(),
        value: "three".into(),
    });
    cluster.run_until(4);
    let hashes = cluster.hashes();
    assert_eq!(
        hashes,
        vec![hashes[0]; 3],
        "every node stepped with the new rate"
    );
    assert_ne!(hashes[0], undisturbed);
    for node in &cluster.nodes {
        let rates: Vec<f32> = node.committed.iter().map(|r| r.learning_rate).collect();
        assert_eq!(rates, vec![0.002, 0.002, 0.01, 0.01]);
        assert_eq!(
            node.state.config().get("consistency").unwrap().as_deref(),
            Some("all"),
            "a refused write changes nothing"
        );
    }
}
