"""Flows as the original server's documentation and integration tests wrote them (hello world,
conditionals, interpolation, error handling with lastError, withItems, out variables, concord.yml
with a default entry point and argument merging), uploaded unchanged and checked for the results the
original server gave."""
from accord_conformance import (assert_log_once, assert_no_log, make_zip, main_json, payload, run_flow)


def test_docs_hello_world_in_a_project_file():
    # The quick-start: a concord.yml with a default flow and a default argument, no _main.json flow.
    z = make_zip({
        "concord.yml": 'configuration:\n  arguments:\n    name: "Concord"\nflows:\n  default:\n  - log: "Hello, ${name}!"\n',
        "_main.json": "{}",
    })
    run = run_flow(z)
    assert_log_once(run.log, r".*Hello, Concord!.*")


def test_docs_hello_world_with_request_arguments_overriding_the_file():
    z = make_zip({
        "concord.yml": 'configuration:\n  arguments:\n    name: "Concord"\nflows:\n  default:\n  - log: "Hello, ${name}!"\n',
        "_main.json": main_json(entry_point=None, arguments={"name": "Accord"}),
    })
    run = run_flow(z)
    assert_log_once(run.log, r".*Hello, Accord!.*")
    assert_no_log(run.log, r".*Hello, Concord!.*")


def test_docs_conditionals():
    flows = """\
        main:
        - if: ${myVar > 0}
          then:
          - log: "it's clearly non-zero"
          else:
          - log: "zero or less"
        - if: ${myVar == 0 || myVar lt 0}
          then:
          - log: "checked with the keyword forms"
        """
    assert_log_once(run_flow(payload(flows, args={"myVar": 5})).log, r".*it's clearly non-zero.*")
    negative = run_flow(payload(flows, args={"myVar": -1})).log
    assert_log_once(negative, r".*zero or less.*")
    assert_log_once(negative, r".*checked with the keyword forms.*")


def test_docs_switch_on_a_value_and_over_conditions():
    flows = """\
        main:
        - switch: ${myVar}
          red:
          - log: "It's red!"
          green:
          - log: "It's definitely green"
          default:
          - log: "I don't know what it is"
        - switch:
          - expr: ${count > 10}
            steps:
            - log: "many"
          - expr: ${count > 0}
            steps:
            - log: "some"
        - log: "done"
        """
    run = run_flow(payload(flows, args={"myVar": "green", "count": 3}))
    assert_log_once(run.log, r".*It's definitely green.*")
    assert_log_once(run.log, r".*some.*")
    assert_no_log(run.log, r".*many.*|.*I don't know.*")
    assert_log_once(run.log, r".*done.*")


def test_docs_interpolation_and_expressions():
    run = run_flow(payload("""\
        main:
        - log: "Hello, ${name.toUpperCase()}! You have ${items.size()} items, first ${items[0]}."
        - expr: ${price * qty}
          out: total
        - log: "total=${total} cheap=${total < 100 ? 'yes' : 'no'} none=[${nothing}] empty=${empty nothing}"
        - log: "${user['first']} ${user.last} ${'literal'.concat('!')} ${[1, 2].contains(2)} ${{'k': 1}.k}"
        """, args={"name": "ada", "items": ["a", "b"], "price": 20, "qty": 3,
                   "user": {"first": "Ada", "last": "Lovelace"}}))
    assert_log_once(run.log, r".*Hello, ADA! You have 2 items, first a\..*")
    assert_log_once(run.log, r".*total=60 cheap=yes none=\[\] empty=true.*")
    assert_log_once(run.log, r".*Ada Lovelace literal! true 1.*")


def test_docs_error_handling_with_last_error():
    run = run_flow(payload("""\
        main:
        - try:
          - log: "Hello!"
          - throw: "Boom!"
          - log: "not reached"
          error:
          - log: "Caught an error: ${lastError.message}"
        - call: anotherFlow
          error:
          - log: "something bad happened: ${lastError.message}"
        - log: "still going"
        anotherFlow:
        - task: throw
          in:
            exception: "from the other flow"
            payload: {code: 42}
        """))
    assert_log_once(run.log, r".*Caught an error: Boom!.*")
    assert_log_once(run.log, r".*something bad happened: from the other flow.*")
    assert_no_log(run.log, r".*not reached.*")
    assert_log_once(run.log, r".*still going.*")


def test_docs_with_items_over_a_list_and_a_map():
    run = run_flow(payload("""\
        main:
        - call: myFlow
          withItems:
          - "first element"
          - "second element"
        - call: eachEntry
          withItems: ${myMap}
        myFlow:
        - log: "We got ${item}"
        eachEntry:
        - log: "${item.key} is ${item.value}"
        """, args={"myMap": {"a": 1, "b": 2}}))
    assert_log_once(run.log, r".*We got first element.*")
    assert_log_once(run.log, r".*We got second element.*")
    assert_log_once(run.log, r".*a is 1.*")
    assert_log_once(run.log, r".*b is 2.*")


def test_it_out_variables_from_the_request():
    run = run_flow(payload("""\
        main:
        - set:
            x: 123
            y.z: "nested"
        - call: compute
          in: {a: "${x}"}
          out: [result]
        compute:
        - set: {result: "${a + 1}"}
        """, out=["x", "y.z", "result"]))
    assert run.body.get("out") == {"x": 123, "y.z": "nested", "result": 124}, run.body


def test_it_entry_point_from_the_project_file_and_deep_argument_merge():
    z = make_zip({
        ".concord.yml": """\
entryPoint: start
configuration:
  arguments:
    db: {host: "db.local", port: 5432}
    mode: "file"
""",
        "processes/start.yml": 'start:\n- log: "host=${db.host} port=${db.port} mode=${mode} extra=${extra}"\n',
        "_main.json": main_json(entry_point=None, arguments={"db": {"port": 6543}, "extra": True}),
    })
    run = run_flow(z)
    assert_log_once(run.log, r".*host=db\.local port=6543 mode=file extra=true.*")
