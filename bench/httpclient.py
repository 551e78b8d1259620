"""A lean HTTP/1.1 client for the benchmarks: asyncio, keep-alive connections, no per-request
threads. `requests` costs about 0.7 ms of CPU per call here, as much as the server spends on a
start, so with it the client, not Accord, sets the pace on a 2-core machine; this one costs a
tenth of that (`make bench` prints the figure).

Only what the benchmarks need: Content-Length and chunked bodies, one request at a time per
connection, connections reused from a pool.
"""
import asyncio
import json


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class Client:
    def __init__(self, host, port, headers=None):
        self.host, self.port = host, port
        self.base = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.idle = []

    async def _connection(self):
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.host, self.port)

    async def request(self, method, path, body=b"", headers=None, timeout=60):
        connection = await self._connection()
        try:
            response = await asyncio.wait_for(self._exchange(connection, method, path, body, headers), timeout)
        except BaseException:
            connection[1].close()
            raise
        if response.headers.get("connection", "").lower() == "close":
            connection[1].close()
        else:
            self.idle.append(connection)
        return response

    async def _exchange(self, connection, method, path, body, headers):
        reader, writer = connection
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.base}{extra}"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        writer.write(head + body if body else head)
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        fields = {}
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            data = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(parts)
        else:
            data = b""
        return Response(status, fields, data)

    def close(self):
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()
