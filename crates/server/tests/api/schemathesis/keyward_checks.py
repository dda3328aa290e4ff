"""Keyward's own schemathesis check, loaded through SCHEMATHESIS_HOOKS by the `schemathesis` integration test.

`positive_data_acceptance` cannot tell a request refused for a rule the admin API description states in words
(a resource that must exist, a lifetime the server's configuration caps) from one refused for no stated reason.
Each operation lists the members with such rules in `x-rules-beyond-schema`, and the server's 400 names the member
first (`scopes: ...`), so this check fails any 400 to a request valid by the schema whose description names no
listed member.
"""

import schemathesis


def _names_a_listed_rule(description, rules):
    for rule in rules:
        if description == rule or description.startswith(rule):
            rest = description[len(rule):]
            # The member itself, or one of its items or members (`scopes[2]: ...`, `key_scopes.api: ...`).
            if rest == "" or rest[0] in ":[. ":
                return True
    return False


@schemathesis.check
def refusal_is_documented(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    rules = case.operation.definition.raw.get("x-rules-beyond-schema", [])
    try:
        description = response.json()["error_description"]
    except Exception as e:  # noqa: BLE001 - any unreadable body is the failure being reported
        raise AssertionError(f"a 400 without the documented error body: {e}") from e
    if not _names_a_listed_rule(description, rules):
        raise AssertionError(
            "a request valid by the schema was refused for a reason the description does not state "
            f"(x-rules-beyond-schema: {rules}): {description}"
        )
    return None
