"""The regression gate: pure rules, and a real model trained on deliberately damaged data."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.training.deploy import Deployer, GateRefused, RasaReplicas
from bot.training.gate import GatePolicy, regressions
from bot.training.registry import ModelRegistry, model_fingerprint
from bot.training.trainer import train_version

# ---- the rules ---------------------------------------------------------------------------


def figures(**over):
    base = {
        "macro_f1": 0.90,
        "oos_recall": 0.85,
        "complain_recall": 0.90,
        "false_fallback_rate": 0.02,
        "per_intent_recall": {"greet": 1.0, "complain": 0.90},
    }
    base.update(over)
    return {"simplified": base}


def test_within_the_margin_passes_and_each_regression_is_named():
    policy = GatePolicy(margin=0.02, intent_margin=0.10)
    assert regressions(figures(macro_f1=0.885, oos_recall=0.84), figures(), policy) == []
    found = regressions(
        figures(
            macro_f1=0.85,
            oos_recall=0.80,
            false_fallback_rate=0.05,
            per_intent_recall={"greet": 0.85, "complain": 0.90},
        ),
        figures(),
        policy,
    )
    assert [f.split(" ")[0] for f in found] == [
        "macro-F1",
        "out-of-scope",
        "false-fallback",
        "greet",
    ]


def test_any_drop_of_complain_recall_is_a_regression():
    found = regressions(figures(complain_recall=0.899, macro_f1=0.95), figures())
    assert found == ["complain recall 0.899 < deployed 0.900 (may not drop at all)"]


def test_traditional_figures_are_gated_too_and_missing_figures_refuse():
    dep = {**figures(), "traditional": figures()["simplified"]}
    cand = {**figures(), "traditional": {**figures()["simplified"], "macro_f1": 0.5}}
    assert regressions(cand, dep)[0].startswith("traditional: macro-F1 0.500")
    assert regressions(None, dep) == ["the candidate has no held-out evaluation"]
    assert regressions(cand, {}) == [
        "the deployed model has no held-out evaluation to compare with"
    ]


# ---- a real worse model ------------------------------------------------------------------

TINY_CONFIG = """recipe: default.v1
language: zh
assistant_id: tiny
pipeline:
  - name: JiebaTokenizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 2
  - name: LogisticRegressionClassifier
    max_iter: 200
  - name: FallbackClassifier
    threshold: 0.1
policies:
  - name: RulePolicy
"""
TINY_DOMAIN = """version: "3.1"
intents: [greet, ask_weather, complain, out_of_scope]
responses:
  utter_greet: [{text: "您好"}]
  utter_weather: [{text: "天气晴"}]
  utter_sorry: [{text: "抱歉"}]
  utter_oos: [{text: "这个我帮不上"}]
"""
TINY_RULES = """version: "3.1"
rules:
- rule: greet
  steps: [{intent: greet}, {action: utter_greet}]
- rule: weather
  steps: [{intent: ask_weather}, {action: utter_weather}]
- rule: complain
  steps: [{intent: complain}, {action: utter_sorry}]
- rule: oos
  steps: [{intent: out_of_scope}, {action: utter_oos}]
"""
EXAMPLES = {
    "greet": [
        "你好",
        "您好呀",
        "哈喽",
        "早上好",
        "晚上好",
        "嗨 在吗",
        "你好 请问在吗",
        "hello",
        "下午好",
        "哈啰 管家",
    ],
    "ask_weather": [
        "明天天气怎么样",
        "三亚下雨吗",
        "这周会不会下雨",
        "后天气温多少度",
        "那边冷不冷",
        "需要带伞吗 会下雨吗",
        "天气预报说什么",
        "周末天气好吗",
        "上海明天多少度",
        "会刮台风吗",
    ],
    "complain": [
        "房间太吵了",
        "空调坏了没人修",
        "热水一直不来",
        "服务员态度很差",
        "房间有蟑螂",
        "等了一个小时没人理",
        "床单是脏的",
        "wifi一直断 太差了",
        "隔壁吵得睡不着",
        "早餐凉了 很失望",
    ],
    "out_of_scope": [
        "帮我写个作文",
        "股票会涨吗",
        "讲个笑话",
        "你喜欢什么电影",
        "一加一等于几",
        "帮我算个命",
        "推荐一部电视剧",
        "明天彩票号码",
        "怎么做红烧肉",
        "地球多大",
    ],
}
HOLDOUT = {
    "greet": ["你好啊", "在吗 你好", "早安", "嗨"],
    "ask_weather": ["下周天气如何", "会下雨吗", "今天多少度", "冷吗那边"],
    "complain": ["房间太脏了", "空调不制冷", "服务太差了", "热水器坏了"],
    "out_of_scope": ["给我讲个故事", "基金怎么买", "帮我写首诗", "猫为什么怕水"],
}


def nlu_yaml(examples: dict) -> str:
    out = ['version: "3.1"', "nlu:"]
    for intent, texts in examples.items():
        out += [f"- intent: {intent}", "  examples: |"] + [f"    - {t}" for t in texts]
    return "\n".join(out) + "\n"


def tiny_project(root: Path, examples: dict) -> None:
    for rel, text in (
        ("config.yml", TINY_CONFIG),
        ("domain.yml", TINY_DOMAIN),
        ("data/rules/rules.yml", TINY_RULES),
        ("data/nlu/nlu.yml", nlu_yaml(examples)),
        ("tests/nlu_holdout/holdout.yml", nlu_yaml(HOLDOUT)),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "data/stories").mkdir(exist_ok=True)


class FakeRasa(ThreadingHTTPServer):
    """Rasa's model HTTP API as far as the deployer uses it (the real server: test_deploy_rasa)."""

    def __init__(self, token: str):
        self.token, self.model_id, self.loads = token, None, []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _authorised(self) -> bool:
        if f"token={self.server.token}" not in self.path:
            self.send_response(401)
            self.end_headers()
            return False
        return True

    def do_GET(self):
        if self._authorised():
            body = json.dumps({"model_id": self.server.model_id}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    def do_PUT(self):
        if self._authorised():
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.server.model_id = model_fingerprint(Path(req["model_file"]))
            self.server.loads.append(req["model_file"])
            self.send_response(204)
            self.end_headers()


def test_a_model_trained_on_damaged_data_is_refused_unless_overridden(tmp_path, crm):
    good = tmp_path / "good"
    tiny_project(good, EXAMPLES)
    registry = ModelRegistry(crm.engine, crm, tmp_path / "registry", good)
    v_good = registry.new_version("admin:test")
    row = train_version(registry, v_good)
    assert row["status"] == "ready", row["error"]
    assert row["figures"]["simplified"]["complain_recall"] > 0.5

    # damaged: half the complaints labelled as greetings
    damaged = tmp_path / "damaged"
    broken = {
        **EXAMPLES,
        "complain": EXAMPLES["complain"][:5],
        "greet": EXAMPLES["greet"] + EXAMPLES["complain"][5:],
    }
    tiny_project(damaged, broken)
    registry_bad = ModelRegistry(crm.engine, crm, tmp_path / "registry", damaged)
    v_bad = registry_bad.new_version("admin:test")
    bad = train_version(registry_bad, v_bad)
    assert bad["status"] == "ready", bad["error"]
    assert bad["data_hash"] != row["data_hash"]

    rasa = FakeRasa("tok")
    try:
        deployer = Deployer(
            registry=registry,
            replicas=RasaReplicas((rasa.url,), "tok"),
            store=crm,
            deployed_path=tmp_path / "deployed.tar.gz",
        )
        deployer.deploy(v_good, actor="admin:test", override="first deploy: nothing to compare")
        assert rasa.model_id == row["fingerprint"]
        with pytest.raises(GateRefused) as refused:
            deployer.deploy(v_bad, actor="admin:test")
        assert any("complain recall" in r for r in refused.value.reasons)
        assert rasa.model_id == row["fingerprint"]  # nothing switched
        out = deployer.deploy(v_bad, actor="admin:li", override="hotfix: accept for the demo")
        assert out["overridden"] and rasa.model_id == bad["fingerprint"]
    finally:
        rasa.shutdown()
    audit = {(a.actor, a.action) for a in crm.audit_entries(subject_type="model_version")}
    assert {
        ("admin:test", "model.deploy_refused"),
        ("admin:li", "model.gate_override"),
        ("admin:li", "model.deploy"),
    } <= audit
    override = crm.audit_entries(subject_type="model_version", action="model.gate_override")[0]
    assert override.detail["override"] == "hotfix: accept for the demo"
    assert registry.deployments()[0]["override_reason"] == "hotfix: accept for the demo"


def test_a_replica_that_fails_puts_the_others_back(tmp_path, crm):
    from bot.training.deploy import DeployError

    project = tmp_path / "p"
    tiny_project(project, EXAMPLES)
    registry = ModelRegistry(crm.engine, crm, tmp_path / "registry", project)
    v1 = registry.new_version("a")
    assert train_version(registry, v1)["status"] == "ready"
    # a second version from the same files: another fingerprint, same figures
    v2 = registry.new_version("a")
    assert train_version(registry, v2)["status"] == "ready"
    one, two = FakeRasa("tok"), FakeRasa("other-token")  # the second refuses our token
    try:
        deployer = Deployer(
            registry=registry,
            replicas=RasaReplicas((one.url,), "tok"),
            store=crm,
            deployed_path=tmp_path / "deployed.tar.gz",
        )
        deployer.deploy(v1, actor="a", override="first")
        deployer.replicas = RasaReplicas((one.url, two.url), "tok")
        with pytest.raises(DeployError, match="put back"):
            deployer.deploy(v2, actor="a")
        assert one.model_id == registry.get(v1)["fingerprint"]
        assert registry.deployed_version() == v1
    finally:
        one.shutdown()
        two.shutdown()
