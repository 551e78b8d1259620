"""FLOWS.md constructs over HTTP, beyond what the shared conformance suite covers: each test uploads
a payload and checks the final status, the log and, where it matters, the status's out/error."""
import re

from accord_conformance import (assert_log_at_least, assert_log_once, assert_no_log, make_zip, main_json,
                                payload, request, run_flow, json_body)


def test_call_out_and_with_items():
    run = run_flow(payload("""\
        main:
        - call: double
          in: {x: 21}
          out: result
        - log: "result=${result}"
        - call: each
          withItems: [a, b]
        each:
        - log: "item=${item}"
        double:
        - set: {result: "${x * 2}"}
        """))
    assert_log_once(run.log, r".*result=42.*")
    assert_log_once(run.log, r".*item=a.*")
    assert_log_once(run.log, r".*item=b.*")


def test_try_error_sets_last_error_and_continues():
    run = run_flow(payload("""\
        main:
        - try:
          - throw: "went wrong"
          error:
          - log: "caught: ${lastError.message}"
        - log: "after the group"
        """))
    assert_log_once(run.log, r".*caught: went wrong.*")
    assert_log_once(run.log, r".*after the group.*")


def test_if_then_else_and_value_switch():
    run = run_flow(payload("""\
        main:
        - if: ${n > 1}
          then:
          - log: "big"
          else:
          - log: "small"
        - switch: ${color}
          red:
          - log: "stop"
          default:
          - log: "go"
        """, args={"n": 5, "color": "green"}))
    assert_log_once(run.log, r".*big.*")
    assert_log_once(run.log, r".*go.*")
    assert_no_log(run.log, r".*small.*|.*stop.*")


def test_out_variables_with_dotted_paths_reach_the_status():
    run = run_flow(payload("""\
        main:
        - set:
            answer: 42
            nested.value: "deep"
        """, out=["answer", "nested.value", "missing"]))
    assert run.body.get("out") == {"answer": 42, "nested.value": "deep", "missing": None}, run.body


def test_script_output_and_variables():
    run = run_flow(payload("""\
        main:
        - script: sh
          body: |
            echo "from the script: $greeting"
            echo "computed=7" >> "$ACCORD_OUT"
        - log: "computed is ${computed}"
        """, args={"greeting": "hi"}))
    assert_log_once(run.log, r".*from the script: hi.*")
    assert_log_once(run.log, r".*computed is 7.*")


def test_concord_yml_default_entry_point_and_argument_merge():
    z = make_zip({
        "concord.yml": "configuration:\n  arguments:\n    who: file\n    keep: kept\nflows:\n  default:\n  - log: \"who=${who} keep=${keep}\"\n",
        "_main.json": '{"arguments": {"who": "request"}}',
    })
    run = run_flow(z)
    assert_log_once(run.log, r".*who=request keep=kept.*")


def test_arguments_with_expressions_see_the_other_arguments():
    run = run_flow(payload('main:\n- log: "full=${full}"\n', args={"first": "Ada", "full": "${first} Lovelace"}))
    assert_log_once(run.log, r".*full=Ada Lovelace.*")


def test_retry_then_failure_names_the_step_and_place():
    run = run_flow(payload("""\
        main:
        - name: flaky step
          throw: "nope"
          retry: {times: 1, delay: 10}
        """), expect="FAILED")
    assert run.body.get("error") == "nope", run.body
    line = assert_log_at_least(run.log, r".*processes/main\.yml:2:3.*flaky step.*nope.*")[0]
    assert "ERROR" in line


def test_unknown_step_key_fails_with_file_line_and_column():
    run = run_flow(payload("main:\n- log: fine\n- frobnicate: x\n"), expect="FAILED")
    assert_log_at_least(run.log, r".*processes/main\.yml:3:3.*unknown step 'frobnicate'.*")
    assert "frobnicate" in run.body.get("error", "")


def test_bad_expression_fails_with_the_column():
    run = run_flow(payload('main:\n- log: "${1 +}"\n'), expect="FAILED")
    assert_log_at_least(run.log, r".*processes/main\.yml:2:.*column.*")


def test_endless_recursion_fails_cleanly():
    run = run_flow(payload("main:\n- call: main\n"), expect="FAILED")
    assert "deeper than" in run.body.get("error", ""), run.body


def test_step_events_tell_the_story():
    run = run_flow(payload("main:\n- log: one\n- call: f\nf:\n- log: two\n"))
    events = json_body(request("GET", f"/api/v1/process/{run.id}/events"), "events")
    steps = [s for e in events if e["type"] == "StepsRecorded" for s in e["data"]["steps"]]
    assert [(s["flow"], s["step"], s["file"], s["line"], s["column"]) for s in steps] == [
        ("main", "log", "processes/main.yml", 2, 3), ("f", "log", "processes/main.yml", 5, 3),
        ("main", "call", "processes/main.yml", 3, 3)
    ], steps
    assert all(e["type"] != "StepsRecorded" or e.get("version", 2) == 2 for e in events)
    assert all(s["outcome"] == "ok" and s["durationMicros"] >= 0 for s in steps)


def test_exit_ends_the_whole_process_successfully():
    run = run_flow(payload("main:\n- call: f\n- log: \"not reached\"\nf:\n- log: \"in f\"\n- exit\n"))
    assert_log_once(run.log, r".*in f.*")
    assert_no_log(run.log, r".*not reached.*")


def test_return_with_a_code_fails_with_that_code():
    run = run_flow(payload("main:\n- call: f\nf:\n- return: badThing\n"), expect="FAILED")
    assert run.body.get("error") == "badThing", run.body


def test_double_colon_group_with_error_block():
    run = run_flow(payload("""\
        main:
        - "::":
          - throw: "inner"
          error:
          - log: "handled ${lastError.message}"
        - log: "continued"
        """))
    assert_log_once(run.log, r".*handled inner.*")
    assert_log_once(run.log, r".*continued.*")


def test_throw_task_with_payload_and_task_out():
    run = run_flow(payload("""\
        main:
        - task: log
          in: {msg: "task form"}
        - try:
          - task: throw
            in:
              exception: "custom failure"
              payload: {code: 7}
          error:
          - log: "message=${lastError.message}"
        """))
    assert_log_once(run.log, r".*task form.*")
    assert_log_once(run.log, r".*message=custom failure.*")


def test_python_script_and_script_file_from_the_payload():
    run = run_flow(payload("""\
        main:
        - script: python3
          body: |
            import os
            print("python says", os.environ["who"])
        - script: scripts/hello.sh
        """, args={"who": "hi"}, files={"scripts/hello.sh": "echo from the file\n"}))
    assert_log_once(run.log, r".*python says hi.*")
    assert_log_once(run.log, r".*from the file.*")


def test_resource_as_json_and_execution_variables():
    run = run_flow(payload("""\
        main:
        - expr: ${execution.setVariable("cfg", resource.asJson("config.json"))}
        - log: "name=${cfg.name} first=${cfg.items[0]}"
        - log: "has=${execution.hasVariable('cfg')}"
        """, files={"config.json": '{"name": "demo", "items": [3, 4]}'}))
    assert_log_once(run.log, r".*name=demo first=3.*")
    assert_log_once(run.log, r".*has=true.*")


def test_resource_outside_the_working_folder_is_refused():
    run = run_flow(payload('main:\n- log: "${resource.asString(\'/etc/hostname\')}"\n'), expect="FAILED")
    assert "outside" in run.body.get("error", ""), run.body


def test_bare_flow_name_and_end_without_a_value():
    run = run_flow(payload("""\
        main:
        - greet
        - log: "back with ${greeting}"
        greet:
        - set: {greeting: "hi"}
        - end:
        - log: "not reached"
        """))
    assert_log_once(run.log, r".*back with hi.*")
    assert_no_log(run.log, r".*not reached.*")


def test_last_error_cause_from_a_throw_payload_and_a_failed_script():
    run = run_flow(payload("""\
        main:
        - try:
          - task: throw
            in: {exception: "declined", payload: {code: 402}}
          error:
          - log: "message=${lastError.message} code=${lastError.cause.code}"
        - try:
          - script: sh
            body: |
              echo "quota exceeded" >&2
              exit 4
          error:
          - log: "script failed: ${lastError.message}; cause: ${lastError.cause}"
        """))
    assert_log_once(run.log, r".*message=declined code=402.*")
    assert_log_once(run.log, r".*script failed: the script exited with status 4; cause: quota exceeded.*")


def test_retry_succeeds_when_the_step_does():
    run = run_flow(payload("""\
        main:
        - script: sh
          body: |
            n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count
            echo "attempt $n"
            [ $n -ge 3 ]
          retry: {times: 5, delay: 10}
        - log: "attempts=${resource.asString('count').trim()}"
        """))
    assert_log_once(run.log, r".*attempt 3.*")
    assert_log_once(run.log, r".*attempts=3.*")
    assert_no_log(run.log, r".*attempt 4.*")


def test_built_in_variables():
    run = run_flow(payload("""\
        main:
        - log: "tx=${txId} id=${instanceId}"
        - log: "same=${workDir == __attr_localPath} file=${resource.asString(workDir.concat('/data.txt')).trim()}"
        """, files={"data.txt": "payload file\n"}))
    assert_log_once(run.log, rf".*tx={run.id} id={run.id}.*")
    assert_log_once(run.log, r".*same=true file=payload file.*")


def test_switch_over_conditions_and_sleep():
    run = run_flow(payload("""\
        main:
        - sleep: 5
        - switch:
          - expr: ${n > 10}
            steps:
            - log: "big"
          - expr: ${n > 1}
            steps:
            - log: "medium"
        - log: "after"
        """, args={"n": 3}))
    assert_log_once(run.log, r".*medium.*")
    assert_no_log(run.log, r".*big.*")
    assert_log_once(run.log, r".*after.*")


def test_wrong_shape_duplicate_flow_and_unknown_flow_fail_precisely():
    shape = run_flow(payload("main:\n- log: ok\n- if: ${true}\n  else:\n  - log: x\n"), expect="FAILED")
    assert_log_at_least(shape.log, r".*processes/main\.yml:3:\d+: .*needs 'then'.*")
    duplicate = run_flow(payload({"processes/a.yml": "main:\n- log: a\n", "processes/b.yml": "main:\n- log: b\n"}),
                         expect="FAILED")
    assert_log_at_least(duplicate.log, r".*processes/b\.yml:1:1.*'main'.*")
    unknown = run_flow(payload("main:\n- call: nowhere\n"), expect="FAILED")
    assert_log_at_least(unknown.log, r".*processes/main\.yml:2:3.*'nowhere'.*")
    assert "nowhere" in unknown.body.get("error", ""), unknown.body
