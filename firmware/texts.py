# What citizens and staff read, one "key text" a line in one string: on the
# device a dict of strings costs some 4 KB of heap more than this one string.
# Keys: screen names (titles), "<screen>_hint" (small print under a title),
# alert and notice names, "keys" and "reasons" (the four labels, "|" between).
# A screen is (name, fields) from Core.current_screen().
ALL = """
serving 服务中
wait 对不起，请稍候
paused 此窗口暂停服务
closed 非工作时间
overtime 延时服务
invite 您的业务已办好，请对我们的服务进行评价
reason 请选择不满意的原因
thanks 感谢您的评价
keys 1 非常满意|2 满意|3 基本满意|4 不满意
reasons 1 等候时间长|2 服务态度不好|3 业务不熟悉/解释不清|4 其他
unknown_badge 未登记的工牌
log_full 存储已满，请联系技术人员
clock_unknown 时钟未校准
sync_failing 数据同步失败，请联系技术人员
settings_corrupt 设置文件损坏，已用默认设置
roster_corrupt 人员名单损坏，请重新下发
identity_corrupt 数据同步文件损坏，请联系技术人员
log_damaged 存储文件损坏，请联系技术人员
reader_fault 工牌读卡器故障，请联系技术人员
sign_fault 显示屏故障，请联系技术人员
staff_no 工号
paused_hint 请到其他窗口办理业务
closed_hint 欢迎在工作时间前来办理
wait_hint 工作人员马上回来
overtime_hint 工作时间外，本窗口继续为您服务
invite_hint 请按键评价
reason_hint 请按键选择
thanks_hint 祝您生活愉快
alert 技术提示
window 服务窗口
"""


def get(key, default=None):
    """The text of key, or default."""
    i = ALL.find("\n" + key + " ")
    if i < 0:
        return default
    i += len(key) + 2
    return ALL[i : ALL.find("\n", i)]


def window_label(window):
    return ("%s号窗口" % window) if window else get("window")


def text(screen):
    """The sign as one line of text, top to bottom joined by " | "."""
    name, f = screen
    out = [window_label(f.get("window")), get(name, name)]
    if name in ("serving", "overtime", "wait") and f.get("staff_name"):
        out.append("%s  %s %s" % (f["staff_name"], get("staff_no"), f["staff_no"]))
    elif name == "invite" or name == "reason":
        out.append(get("keys" if name == "invite" else "reasons").replace("|", "  "))
    a = f.get("notice")
    if a:
        out.append(get(a, a))
    a = f.get("alert")
    if a:
        out.append("⚠ " + get(a, a))
    return " | ".join([x for x in out if x])
