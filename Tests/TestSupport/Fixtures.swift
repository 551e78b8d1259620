import Foundation
import JSON
import Model

/// A fresh temporary folder, removed by the caller with `cleanUp`.
package func temporaryDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "accord-tests-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

package func cleanUp(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

package let fixedID = InstanceID("0d0a817d-4af8-496c-b6ef-3888ad2386ee")!
package let fixedExecutor = ExecutorID("executor-1/6c60cf49")

package func created(_ id: InstanceID = fixedID, at millis: Int64 = 1_764_380_000_000, key: String? = nil)
    -> EventEnvelope
{
    EventEnvelope(
        instanceID: id, at: Timestamp(millis: millis), requestID: RequestID("req-1"),
        event: .instanceCreated(
            InstanceCreated(
                entryPoint: "main", arguments: ["name": .string("world"), "n": .int(3)], timeoutMillis: 30_000,
                out: ["result"], tags: ["demo"],
                payload: PayloadRef(digest: String(repeating: "ab", count: 32), size: 120),
                idempotencyKey: key, principal: "0011223344556677")))
}

package func event(_ id: InstanceID = fixedID, _ event: Event, at millis: Int64 = 1_764_380_000_100) -> EventEnvelope {
    EventEnvelope(instanceID: id, at: Timestamp(millis: millis), event: event)
}

/// One example of every event type: the lifecycle of a run in order, then the other terminal
/// events and the ones that carry no status (by index in some tests: append, never insert).
package func everyEvent(_ id: InstanceID = fixedID) -> [EventEnvelope] {
    [
        created(id),
        event(id, .instanceAssigned(InstanceAssigned(executorID: fixedExecutor, attempt: 1))),
        event(id, .instanceStarted(InstanceStarted(executorID: fixedExecutor))),
        event(
            id,
            .logAppended(
                LogAppended(lines: [
                    LogLine(at: Timestamp(millis: 1_764_380_000_200), level: .info, text: "Hello, world")
                ]))),
        event(id, .instanceFinished(InstanceFinished(out: ["result": .int(42)]))),
        event(id, .instanceFailed(InstanceFailed(error: "boom", out: [:]))),
        event(id, .instanceCancelled(InstanceCancelled(reason: "stopped by a client"))),
        event(id, .instanceTimedOut(InstanceTimedOut(error: "too slow"))),
        event(
            id,
            .stepsRecorded(
                StepsRecorded(steps: [
                    StepRecord(
                        flow: "main", step: "log", file: "processes/main.yml", line: 2, column: 3,
                        startedAt: Timestamp(millis: 1_764_380_000_150),
                        durationMicros: 42, outcome: .ok)
                ]))),
        event(id, .instanceRequeued(InstanceRequeued(reason: "executor lost: no heartbeat for 10 s"))),
    ]
}

package let fixedKeyID = KeyID("5b1f7a52-3c49-4e6a-9d0e-2f8c51a0b7e4")!

/// One example of every API key event, about `fixedKeyID` (a stream of its own).
package func everyKeyEvent(_ id: KeyID = fixedKeyID) -> [EventEnvelope] {
    [
        EventEnvelope(
            instanceID: id, at: Timestamp(millis: 1_764_380_000_300), requestID: RequestID("req-2"),
            event: .apiKeyCreated(
                ApiKeyCreated(
                    name: "ci-bot", team: "payments", admin: false, hash: String(repeating: "cd", count: 32),
                    createdBy: "0011223344556677"))),
        EventEnvelope(
            instanceID: id, at: Timestamp(millis: 1_764_380_000_400), requestID: RequestID("req-3"),
            event: .apiKeyRevoked(ApiKeyRevoked(revokedBy: "0011223344556677"))),
    ]
}

/// A retention pass's event (a stream of its own).
package func trimEvent() -> EventEnvelope {
    EventEnvelope(
        instanceID: InstanceID("7c9e6679-7425-40de-944b-e07fc1f90ae7")!, at: Timestamp(millis: 1_764_380_000_500),
        event: .historyTrimmed(
            HistoryTrimmed(before: Timestamp(millis: 1_761_788_000_500), retentionMillis: 2_592_000_000)))
}

/// One example of every handler event: a payload's declaration, then its `onFailure` run.
package func everyHandlerEvent(_ id: InstanceID = fixedID) -> [EventEnvelope] {
    [
        event(id, .handlersDeclared(HandlersDeclared(flows: ["onCancel", "onFailure"])), at: 1_764_380_000_600),
        event(
            id, .handlerAssigned(HandlerAssigned(flow: "onFailure", executorID: fixedExecutor, attempt: 1)),
            at: 1_764_380_000_700),
        event(id, .handlerRequeued(HandlerRequeued(flow: "onFailure", reason: "executor lost")), at: 1_764_380_000_800),
        event(id, .handlerStarted(HandlerStarted(flow: "onFailure", executorID: fixedExecutor)), at: 1_764_380_000_900),
        event(id, .handlerEnded(HandlerEnded(flow: "onFailure", error: "boom again")), at: 1_764_380_001_000),
    ]
}

/// Events with the optional fields added since their type's version 1 (absent in older logs).
package func eventsWithLaterFields(_ id: InstanceID = fixedID) -> [EventEnvelope] {
    var withHandlerTimeout = created(id)
    if case .instanceCreated(var e) = withHandlerTimeout.event {
        e.handlerTimeoutMillis = 600_000
        withHandlerTimeout.event = .instanceCreated(e)
    }
    var child = created(InstanceID(UUID(uuidString: "00000000-0000-4000-8000-0000000000c1")!))
    if case .instanceCreated(var e) = child.event {
        e.parentInstanceId = id
        e.parentWaits = true
        child.event = .instanceCreated(e)
    }
    return [
        withHandlerTimeout,
        child,
        event(
            id,
            .instanceResumed(
                InstanceResumed(
                    event: ChildStart.waitEvent(for: child.instanceID), variables: [:],
                    child: ChildOutcome(
                        id: child.instanceID, status: .failed, out: ["x": .array([.int(1)])], error: "boom")))),
        event(
            id,
            .instanceResumed(
                InstanceResumed(
                    event: ChildStart.waitEvent(for: child.instanceID), variables: [:],
                    child: ChildOutcome(id: child.instanceID, status: .finished, out: [:], error: nil)))),
        event(
            id,
            .instanceFailed(
                InstanceFailed(
                    error: "boom", out: ["result": .int(1)],
                    variables: ["color": .string("blue"), "lastError": .object(["message": .string("boom")])]))),
        event(id, .handlerEnded(HandlerEnded(flow: "onCancel", error: nil))),
    ]
}

/// The files an instance left under `_attachments/`.
package func attachmentsEvent(_ id: InstanceID = fixedID) -> EventEnvelope {
    event(
        id,
        .attachmentsStored(
            AttachmentsStored(
                archive: PayloadRef(digest: String(repeating: "ef", count: 32), size: 321),
                files: [AttachmentFile(name: "report.txt", size: 12), AttachmentFile(name: "sub/data.json", size: 7)])),
        at: 1_764_380_001_100)
}

/// A suspension and its resume.
package func suspendEvents(_ id: InstanceID = fixedID) -> [EventEnvelope] {
    [
        event(
            id,
            .instanceSuspended(
                InstanceSuspended(
                    event: "approval", state: PayloadRef(digest: String(repeating: "cd", count: 32), size: 77))),
            at: 1_764_380_001_200),
        event(
            id, .instanceResumed(InstanceResumed(event: "approval", variables: ["approved": .bool(true)])),
            at: 1_764_380_001_300),
    ]
}

/// Every event type and version written today: the instance fixtures, the key ones, a trim.
package func everyEventType() -> [EventEnvelope] {
    everyEvent() + everyKeyEvent() + [trimEvent()] + everyHandlerEvent() + [attachmentsEvent()] + suspendEvents()
}
