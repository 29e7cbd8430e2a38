def run_data(
    data: bytes,
    pos: int,
    limit: int,
    stack: list[object],
    marks: list[int],
    memo: list[object] | None,
    pdict: type,
    frame_end: int,
    globalref: type,
    shared: list[object],
    /,
) -> tuple[int, int, int]: ...
