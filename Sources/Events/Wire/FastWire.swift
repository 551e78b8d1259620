/// Hand-written JSON for the messages every instance sends several times (an executor's reports):
/// the same text `Codable` writes and reads, without its generic machinery, which was a tenth of
/// the executor's and the Scheduler's CPU under load. `Codable` stays the reference and the
/// fallback: a test checks both ways on every kind of report.
package enum FastWire {
    /// The header JSON of `ExecutorRequest.reports`, or nil when a value is not one this writes
    /// exactly as `JSONEncoder` does (a floating-point number).
    package static func reportsHeader(executorID: ExecutorID, reports: [Report]) -> [UInt8]? {
        var out = JSONWriter(capacity: 128 + reports.count * 160)
        let written = out.object {
            $0.nested("reports") {
                $0.field("executorID", executorID.rawValue)
                $0.key("reports")
                return $0.array(reports) { writer, item in writer.object { report(item, &$0) } }
            }
        }
        return written ? out.bytes : nil
    }

    /// The members of one `Report`.
    private static func report(_ report: Report, _ out: inout JSONWriter) -> Bool {
        out.field("at", report.at.millis)
        out.field("instanceID", report.instanceID.description)
        let kind = out.nested("kind") {
            switch report.kind {
            case .started:
                $0.nested("started")
            case .log(let lines):
                $0.nested("log") {
                    $0.key("lines")
                    $0.array(lines) { $0.logLine($1) }
                    return true
                }
            case .steps(let records):
                $0.nested("steps") {
                    $0.key("records")
                    $0.array(records) { $0.stepRecord($1) }
                    return true
                }
            case .finished(let values):
                return $0.nested("finished") { $0.field("out", object: values) }
            case .failed(let error, let values):
                return $0.nested("failed") {
                    $0.field("error", error)
                    return $0.field("out", object: values)
                }
            }
            return true
        }
        out.field("seq", report.seq)
        return kind
    }
}

/// A message `WireFrame` writes and reads by hand when it can (the per-instance messages):
/// `fastHeader` is the JSON `Codable` would write, or nil to let `Codable` write it.
package protocol FastWireEncodable {
    var fastHeader: [UInt8]? { get }
}

/// A message `WireFrame` reads by hand when it can: nil lets `JSONDecoder` read it.
package protocol FastWireDecodable {
    static func fastDecode(_ header: ArraySlice<UInt8>) -> Self?
}

extension ExecutorRequest: FastWireEncodable {
    package var fastHeader: [UInt8]? {
        guard case .reports(let executorID, let reports) = self else { return nil }
        return FastWire.reportsHeader(executorID: executorID, reports: reports)
    }
}

extension SchedulerRequest: FastWireEncodable {
    /// `start`, which every start sends.
    package var fastHeader: [UInt8]? {
        guard case .start(let start) = self else { return nil }
        var out = JSONWriter()
        let written = out.unlabeledCase("start") {
            $0.object { out in members(of: start, &out) }
        }
        return written ? out.bytes : nil
    }

    private func members(of start: StartInstance, _ out: inout JSONWriter) -> Bool {
        guard out.field("arguments", object: start.arguments) else { return false }
        out.field("entryPoint", start.entryPoint)
        out.field("idempotencyKey", start.idempotencyKey)
        out.field("out", strings: start.out)
        out.field("principal", start.principal)
        out.field("requestID", start.requestID.rawValue)
        out.field("tags", strings: start.tags)
        out.field("timeoutMillis", start.timeoutMillis)
        return true
    }
}

extension SchedulerReply: FastWireEncodable {
    /// `started`, the answer to every start.
    package var fastHeader: [UInt8]? {
        guard case .started(let id, let created, let seq) = self else { return nil }
        var out = JSONWriter()
        _ = out.object {
            $0.nested("started") {
                $0.field("created", created)
                $0.field("instanceID", id.description)
                $0.field("seq", seq)
                return true
            }
        }
        return out.bytes
    }
}

extension ExecutorCommand: FastWireEncodable {
    /// `dispatch`, sent once per instance.
    package var fastHeader: [UInt8]? {
        guard case .dispatch(let dispatch) = self else { return nil }
        var out = JSONWriter()
        let written = out.unlabeledCase("dispatch") {
            $0.object {
                guard $0.field("arguments", object: dispatch.arguments) else { return false }
                $0.field("attempt", Int64(dispatch.attempt))
                $0.field("entryPoint", dispatch.entryPoint)
                $0.field("instanceID", dispatch.instanceID.description)
                $0.field("out", strings: dispatch.out)
                return true
            }
        }
        return written ? out.bytes : nil
    }
}
