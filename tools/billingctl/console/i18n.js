// The console's words in Korean and English, and the formats of money and time.
// The language lives in memory only: the page stores nothing.

const ko = {
  "app.title": "청구 운영 콘솔",
  "skip": "본문으로 건너뛰기",
  "nav.label": "페이지",
  "nav.month": "월 정산",
  "nav.funnel": "발송 현황",
  "nav.customer": "고객",
  "nav.failures": "실패 기록",
  "nav.settings": "설정",
  "cycle.label": "청구 월",
  "cycle.none": "정산된 청구 월 없음",
  "role.label": "권한",
  "role.viewer": "조회자",
  "role.operator": "운영자",
  "role.administrator": "관리자",
  "role.unknown": "알 수 없음",
  "lang.switch": "English",
  "lang.switchLabel": "Switch to English",
  "loading": "불러오는 중…",
  "none": "없음",
  "yes": "예",
  "no": "아니요",
  "all": "전체",
  "kst": "한국 시간",
  "session.stack": "스택",
  "session.local": "로컬 관리 API",
  "session.version": "버전",

  "month.title": "월 정산",
  "month.state": "정산 상태",
  "month.status.SETTLING": "정산 중",
  "month.status.SETTLED": "정산 완료",
  "month.status.FAILED": "정산 실패",
  "month.execution": "Step Functions 실행 열기",
  "month.noExecution": "실행 링크 없음 (로컬 실행)",
  "month.shards": "샤드별 정산",
  "month.shardsSummary": "샤드 {total}개: 완료 {done}, 진행 중 {in_progress}, 실패 {failed}, 시작 전 {not_started}, 청구서 생성 {rendered}",
  "month.shardCell": "샤드 {shard}: {status}{rendered}",
  "month.shardRendered": ", 청구서 생성됨",
  "month.noShardList": "샤드별 상태는 이 관리 API가 아직 제공하지 않습니다.",
  "month.failedShards": "실패한 샤드와 원인",
  "month.money": "금액 대사",
  "month.billed": "청구 합계",
  "month.corrections": "정정 ({count}건)",
  "month.net": "순 청구액",
  "month.figures": "수치",
  "month.customers": "고객",
  "month.bills": "청구서",
  "month.notBillable": "청구 제외",
  "month.deliveries": "발송 건",
  "month.checksum": "체크섬",
  "month.catalog": "요금표 버전",
  "month.template": "템플릿 버전",
  "month.started": "시작",
  "month.finished": "종료",
  "month.runs": "실행 횟수",
  "month.reasons": "대사 불일치 사유",
  "shard.DONE": "완료",
  "shard.IN_PROGRESS": "진행 중",
  "shard.FAILED": "실패",
  "shard.NOT_STARTED": "시작 전",
  "shard.legend": "범례",
  "shard.rendered": "청구서 생성됨",

  "funnel.title": "발송 현황",
  "funnel.updated": "마지막 갱신",
  "funnel.auto": "이 페이지가 열려 있는 동안 3초마다 갱신합니다.",
  "funnel.chartTitle": "2시간 발송 구간별 발송 건수 (채널별 누적) 및 상태별 발송 건",
  "funnel.chartDesc": "구간 {slots}개, 발송 {sent}건. 아래 표에 같은 수치가 있습니다.",
  "funnel.noSends": "아직 발송된 건이 없습니다.",
  "funnel.slot": "발송 구간 (한국 시간)",
  "funnel.email": "이메일",
  "funnel.sms": "문자",
  "funnel.total": "합계",
  "funnel.states": "상태별 발송 건",
  "funnel.byState": "상태별",
  "funnel.deliveries": "전체 {n}건",
  "funnel.needsOperator": "확인 필요 {n}건",
  "funnel.queues": "발송 대기열",
  "funnel.queue": "대기열",
  "funnel.visible": "대기",
  "funnel.inFlight": "처리 중",
  "funnel.delayed": "지연",
  "funnel.oldest": "가장 오래된 대기",
  "funnel.age": "{age} 전",
  "funnel.deadLetters": "데드레터 대기열",
  "funnel.waiting": "대기 메시지",
  "funnel.noQueues": "대기열 정보는 이 관리 API가 아직 제공하지 않습니다.",
  "funnel.tableCaption": "구간별 발송 건수",

  "customer.title": "고객",
  "customer.search": "고객 ID 또는 청구서 ID",
  "customer.searchHint": "예: C0000123 또는 2026-11#00001#C0000123",
  "customer.searchButton": "찾기",
  "customer.badQuery": "고객 ID(C0000123) 또는 청구서 ID(2026-11#00001#C0000123)를 입력하세요.",
  "customer.noCycle": "청구 월을 먼저 선택하세요.",
  "customer.prompt": "고객을 찾으면 발송 상태, 경과, 청구서와 명령 기록이 여기에 나옵니다.",
  "customer.delivery": "발송",
  "customer.state": "상태",
  "customer.channel": "채널",
  "customer.preferred": "선호 채널",
  "customer.sendDate": "발송일",
  "customer.availableAt": "발송 가능 시각",
  "customer.dnd": "방해 금지 시간대",
  "customer.attempts": "시도 (이메일 / 문자)",
  "customer.round": "발송 회차",
  "customer.total": "청구 금액",
  "customer.lastError": "마지막 오류",
  "customer.heldReason": "보류 사유",
  "customer.parkedReason": "발송 실패 사유",
  "customer.template": "템플릿",
  "customer.operatorAction": "필요한 조치",
  "customer.timeline": "경과",
  "customer.contact": "연락처 (가림 처리)",
  "customer.name": "이름",
  "customer.email": "이메일",
  "customer.phone": "전화",
  "customer.invoice": "청구서 미리보기",
  "customer.invoiceTitle": "이 고객의 이메일 청구서",
  "customer.noInvoice": "청구서 미리보기를 열 수 없습니다: {why}",
  "customer.commands": "명령 기록",
  "customer.noCommands": "이 발송에 내려진 명령이 없습니다.",
  "customer.actions": "조치",
  "customer.billId": "청구서 ID",

  "step.rendered": "청구서 생성",
  "step.queued": "대기열 등록",
  "step.claimed": "발송 시작",
  "step.deferred": "연기",
  "step.sent": "발송",
  "step.fell-back": "문자로 전환",
  "step.held": "보류",
  "step.dead": "발송 실패",
  "step.delivered": "수신 확인",
  "step.bounced": "반송",
  "step.complained": "스팸 신고",
  "step.confirmed": "발송 확인",
  "step.failure": "실패 기록",
  "step.command": "운영 명령",

  "state.READY": "발송 대기",
  "state.QUEUED": "대기열",
  "state.SENDING": "발송 중",
  "state.SENT_EMAIL": "이메일 발송됨",
  "state.SENT_SMS": "문자 발송됨",
  "state.DEAD": "발송 실패",
  "state.HELD": "보류",
  "state.UNCONFIRMED": "확인 필요",

  "failures.title": "실패 기록",
  "failures.code": "실패 코드",
  "failures.channel": "채널",
  "failures.apply": "적용",
  "failures.none": "조건에 맞는 실패 기록이 없습니다.",
  "failures.customer": "고객",
  "failures.stage": "단계",
  "failures.reason": "사유",
  "failures.attempts": "시도",
  "failures.occurrences": "발생",
  "failures.last": "마지막 발생",
  "failures.actions": "조치",
  "failures.open": "보기",
  "failures.openLabel": "{customer} 고객 보기",
  "failures.next": "다음 페이지",
  "failures.prev": "이전 페이지",
  "failures.page": "{n}쪽",
  "failures.unreadable": "읽을 수 없는 기록 {n}건",
  "failures.caption": "실패 기록 (한 쪽에 최대 100건)",
  "failures.pager": "실패 기록 쪽 이동",

  "settings.title": "설정",
  "settings.policy": "채널 정책",
  "settings.value": "값",
  "settings.source": "출처",
  "settings.source.setting": "운영자 설정",
  "settings.source.deployment": "배포 기본값",
  "settings.revision": "개정",
  "settings.updated": "변경",
  "settings.readBy": "읽는 함수",
  "settings.takesEffect": "적용 시점",
  "settings.templates": "청구서 템플릿",
  "settings.active": "사용 중",
  "settings.default": "배포 기본값",
  "settings.preview": "미리보기",
  "settings.sample": "예시 청구서",
  "settings.previewTitle": "템플릿 {version} 미리보기",
  "settings.sms": "문자 메시지",
  "policy.email,sms": "이메일, 실패 시 문자",
  "policy.email": "이메일만",
  "policy.sms": "문자만",
  "policy.none": "발송 중지",

  "action.resend": "재발송",
  "action.convert-to-sms": "문자로 전환",
  "action.force-send": "강제 발송",
  "action.hold": "보류",
  "action.schedule": "발송 예약",
  "action.confirm": "발송 확인",
  "action.redrive": "재처리",
  "action.redriveQueue": "{queue} 재처리",
  "action.needsRole": "{role} 권한 필요",
  "action.needsRoleTitle": "이 조치는 {role} 권한이 필요합니다 (현재 권한: {you})",
  "action.dialogTitle": "{action}: {target}",
  "action.commandId": "명령 ID",
  "action.commandIdHint": "응답을 받기 전에 다시 시도하면 같은 명령 ID로 보내져 한 번만 적용됩니다.",
  "action.reason": "사유 (필수, 감사 기록에 남습니다. 연락처는 쓰지 마세요)",
  "action.at": "발송 시각 (한국 시간)",
  "action.submit": "실행",
  "action.cancel": "취소",
  "action.reasonRequired": "사유를 입력하세요: 모든 명령은 이유와 함께 감사 기록에 남습니다.",
  "action.atRequired": "발송 예약에는 시각이 필요합니다.",
  "action.noAnswer": "응답 없음: 다시 시도하세요. 같은 명령 ID라 한 번만 적용됩니다.",
  "action.sending": "보내는 중…",
  "action.result": "감사 기록",
  "action.resultCommand": "명령",
  "action.resultTarget": "대상",
  "action.resultWho": "실행자",
  "action.resultWhen": "시각",
  "action.resultWhy": "사유",
  "action.resultOutcome": "결과",
  "action.replayed": "이미 적용된 명령입니다 (재전송, 다시 적용하지 않음)",
  "action.dismiss": "닫기",

  "error.title": "오류",
  "error.dismiss": "닫기",
  "error.401": "콘솔 세션이 없거나 만료되었습니다. billingctl console이 출력한 링크(…/login?token=…)를 다시 여세요.",
  "error.403": "권한이 부족합니다. 현재 권한: {you}{needed}. 관리자에게 권한 부여를 요청하세요 (billingctl roles set).",
  "error.403needed": ", 필요한 권한: {role}",
  "error.404": "이 청구 월에서 찾을 수 없습니다.",
  "error.409": "현재 상태에서는 할 수 없습니다.",
  "error.400": "요청이 올바르지 않습니다.",
  "error.502": "관리 API가 응답하지 않았습니다. 스택과 AWS 자격 증명을 확인하고 다시 시도하세요.",
  "error.504": "관리 API가 20초 안에 응답하지 않았습니다. 스택과 AWS 자격 증명을 확인하고 다시 시도하세요.",
  "error.500": "관리 API 내부 오류입니다. 요청 ID로 함수 로그를 확인하세요.",
  "error.network": "콘솔 서버에 연결할 수 없습니다. billingctl console이 실행 중인지 확인하고 다시 시도하세요.",
  "error.other": "예상하지 못한 응답 ({status}).",
  "error.server": "서버 메시지",
};

const en = {
  "app.title": "Billing operations console",
  "skip": "Skip to content",
  "nav.label": "Pages",
  "nav.month": "Month",
  "nav.funnel": "Funnel",
  "nav.customer": "Customer",
  "nav.failures": "Failures",
  "nav.settings": "Settings",
  "cycle.label": "Cycle",
  "cycle.none": "no cycle settled yet",
  "role.label": "Role",
  "role.viewer": "viewer",
  "role.operator": "operator",
  "role.administrator": "administrator",
  "role.unknown": "unknown",
  "lang.switch": "한국어",
  "lang.switchLabel": "한국어로 보기",
  "loading": "Loading…",
  "none": "none",
  "yes": "yes",
  "no": "no",
  "all": "all",
  "kst": "Korea time",
  "session.stack": "Stack",
  "session.local": "local admin API",
  "session.version": "Version",

  "month.title": "Month",
  "month.state": "Settlement state",
  "month.status.SETTLING": "settling",
  "month.status.SETTLED": "settled",
  "month.status.FAILED": "failed",
  "month.execution": "Open the Step Functions execution",
  "month.noExecution": "no execution link (a local run)",
  "month.shards": "Settlement by shard",
  "month.shardsSummary": "{total} shards: {done} done, {in_progress} in progress, {failed} failed, {not_started} not started, {rendered} rendered",
  "month.shardCell": "Shard {shard}: {status}{rendered}",
  "month.shardRendered": ", invoices rendered",
  "month.noShardList": "This admin API does not give the shards one by one yet.",
  "month.failedShards": "Failed shards and why",
  "month.money": "Reconciliation",
  "month.billed": "Billed",
  "month.corrections": "Corrections ({count})",
  "month.net": "Net",
  "month.figures": "Figures",
  "month.customers": "Customers",
  "month.bills": "Bills",
  "month.notBillable": "Not billable",
  "month.deliveries": "Deliveries",
  "month.checksum": "Checksum",
  "month.catalog": "Catalog version",
  "month.template": "Template version",
  "month.started": "Started",
  "month.finished": "Finished",
  "month.runs": "Runs",
  "month.reasons": "Why reconciliation failed",
  "shard.DONE": "done",
  "shard.IN_PROGRESS": "in progress",
  "shard.FAILED": "failed",
  "shard.NOT_STARTED": "not started",
  "shard.legend": "Legend",
  "shard.rendered": "invoices rendered",

  "funnel.title": "Funnel",
  "funnel.updated": "Updated",
  "funnel.auto": "Refreshes every 3 seconds while this page is shown.",
  "funnel.chartTitle": "Sends per 2-hour slot, stacked by channel, and deliveries by state",
  "funnel.chartDesc": "{slots} slots, {sent} sends. The table below holds the same figures.",
  "funnel.noSends": "Nothing sent yet.",
  "funnel.slot": "Send slot (Korea time)",
  "funnel.email": "Email",
  "funnel.sms": "SMS",
  "funnel.total": "Total",
  "funnel.states": "Deliveries by state",
  "funnel.byState": "By state",
  "funnel.deliveries": "{n} deliveries",
  "funnel.needsOperator": "{n} need an operator",
  "funnel.queues": "Send queues",
  "funnel.queue": "Queue",
  "funnel.visible": "Waiting",
  "funnel.inFlight": "In flight",
  "funnel.delayed": "Delayed",
  "funnel.oldest": "Oldest queued",
  "funnel.age": "{age} ago",
  "funnel.deadLetters": "Dead-letter queues",
  "funnel.waiting": "Messages waiting",
  "funnel.noQueues": "This admin API does not give the queues yet.",
  "funnel.tableCaption": "Sends per slot",

  "customer.title": "Customer",
  "customer.search": "Customer id or bill id",
  "customer.searchHint": "e.g. C0000123 or 2026-11#00001#C0000123",
  "customer.searchButton": "Find",
  "customer.badQuery": "Enter a customer id (C0000123) or a bill id (2026-11#00001#C0000123).",
  "customer.noCycle": "Choose a cycle first.",
  "customer.prompt": "Find a customer to see the delivery, its timeline, the invoice and the commands given on it.",
  "customer.delivery": "Delivery",
  "customer.state": "State",
  "customer.channel": "Channel",
  "customer.preferred": "Preferred channel",
  "customer.sendDate": "Send date",
  "customer.availableAt": "Not before",
  "customer.dnd": "Do-not-disturb slots",
  "customer.attempts": "Attempts (email / SMS)",
  "customer.round": "Send round",
  "customer.total": "Amount billed",
  "customer.lastError": "Last error",
  "customer.heldReason": "Why held",
  "customer.parkedReason": "Why it died",
  "customer.template": "Template",
  "customer.operatorAction": "What it needs",
  "customer.timeline": "Timeline",
  "customer.contact": "Contact (masked)",
  "customer.name": "Name",
  "customer.email": "Email",
  "customer.phone": "Phone",
  "customer.invoice": "Invoice preview",
  "customer.invoiceTitle": "This customer's email invoice",
  "customer.noInvoice": "The invoice preview cannot be shown: {why}",
  "customer.commands": "Commands given on it",
  "customer.noCommands": "No command was given on this delivery.",
  "customer.actions": "Actions",
  "customer.billId": "Bill id",

  "step.rendered": "rendered",
  "step.queued": "queued",
  "step.claimed": "claimed",
  "step.deferred": "deferred",
  "step.sent": "sent",
  "step.fell-back": "fell back to SMS",
  "step.held": "held",
  "step.dead": "dead",
  "step.delivered": "delivered",
  "step.bounced": "bounced",
  "step.complained": "complaint",
  "step.confirmed": "confirmed",
  "step.failure": "failure",
  "step.command": "command",

  "state.READY": "ready",
  "state.QUEUED": "queued",
  "state.SENDING": "sending",
  "state.SENT_EMAIL": "sent by email",
  "state.SENT_SMS": "sent by SMS",
  "state.DEAD": "dead",
  "state.HELD": "held",
  "state.UNCONFIRMED": "unconfirmed",

  "failures.title": "Failures",
  "failures.code": "Failure code",
  "failures.channel": "Channel",
  "failures.apply": "Apply",
  "failures.none": "No failure record matches.",
  "failures.customer": "Customer",
  "failures.stage": "Stage",
  "failures.reason": "Reason",
  "failures.attempts": "Attempts",
  "failures.occurrences": "Times",
  "failures.last": "Last",
  "failures.actions": "Actions",
  "failures.open": "Open",
  "failures.openLabel": "Open customer {customer}",
  "failures.next": "Next page",
  "failures.prev": "Previous page",
  "failures.page": "Page {n}",
  "failures.unreadable": "{n} unreadable records",
  "failures.caption": "The failure log (up to 100 a page)",
  "failures.pager": "Pages of the failure log",

  "settings.title": "Settings",
  "settings.policy": "Channel policy",
  "settings.value": "Value",
  "settings.source": "Source",
  "settings.source.setting": "set by an operator",
  "settings.source.deployment": "deployment default",
  "settings.revision": "Revision",
  "settings.updated": "Changed",
  "settings.readBy": "Read by",
  "settings.takesEffect": "Takes effect",
  "settings.templates": "Invoice templates",
  "settings.active": "active",
  "settings.default": "deployment default",
  "settings.preview": "Preview",
  "settings.sample": "Sample bill",
  "settings.previewTitle": "Preview of template {version}",
  "settings.sms": "Text message",
  "policy.email,sms": "email, then SMS",
  "policy.email": "email only",
  "policy.sms": "SMS only",
  "policy.none": "delivery paused",

  "action.resend": "Resend",
  "action.convert-to-sms": "Convert to SMS",
  "action.force-send": "Force-send",
  "action.hold": "Hold",
  "action.schedule": "Schedule",
  "action.confirm": "Confirm sent",
  "action.redrive": "Redrive",
  "action.redriveQueue": "Redrive {queue}",
  "action.needsRole": "needs {role}",
  "action.needsRoleTitle": "This action needs the {role} role (yours: {you})",
  "action.dialogTitle": "{action}: {target}",
  "action.commandId": "Command id",
  "action.commandIdHint": "A retry before an answer sends the same command id, so the command applies once.",
  "action.reason": "Reason (required; kept in the audit; no contact data)",
  "action.at": "Send at (Korea time)",
  "action.submit": "Run",
  "action.cancel": "Cancel",
  "action.reasonRequired": "Give a reason: every command is audited with why it was given.",
  "action.atRequired": "Schedule needs a time.",
  "action.noAnswer": "No answer: try again, the same command id makes it apply once.",
  "action.sending": "Sending…",
  "action.result": "Audit record",
  "action.resultCommand": "Command",
  "action.resultTarget": "Target",
  "action.resultWho": "Who",
  "action.resultWhen": "When",
  "action.resultWhy": "Why",
  "action.resultOutcome": "Outcome",
  "action.replayed": "Already applied under this id: the first answer, applied once",
  "action.dismiss": "Dismiss",

  "error.title": "Error",
  "error.dismiss": "Dismiss",
  "error.401": "No console session, or it ended: open the link billingctl console printed (…/login?token=…) again.",
  "error.403": "Not allowed for your role. Your role: {you}{needed}. Ask an administrator to grant it (billingctl roles set).",
  "error.403needed": "; needed: {role}",
  "error.404": "Not found in this cycle.",
  "error.409": "The delivery's state refuses it.",
  "error.400": "The request was refused as malformed.",
  "error.502": "The admin API did not answer: check the stack and your AWS credentials, then try again.",
  "error.504": "The admin API did not answer within 20 seconds: check the stack and your AWS credentials, then try again.",
  "error.500": "The admin API failed inside: look the request id up in the function's log.",
  "error.network": "The console server cannot be reached: check that billingctl console still runs, then try again.",
  "error.other": "Unexpected answer ({status}).",
  "error.server": "The server says",
};

export const DICTIONARIES = { ko, en };

let current = "en";

/// The language the browser prefers: Korean when its first language is Korean.
export function preferredLanguage(languages = navigator.languages || [navigator.language || "en"]) {
  const first = (languages[0] || "en").toLowerCase();
  return first.startsWith("ko") ? "ko" : "en";
}

export function setLanguage(lang) {
  current = lang === "ko" ? "ko" : "en";
  document.documentElement.lang = current;
}

export function language() {
  return current;
}

function locale() {
  return current === "ko" ? "ko-KR" : "en-US";
}

/// The text of `key` in the current language, `{name}` replaced from `params`.
export function t(key, params = {}) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/// `key`'s text, or `fallback` when neither dictionary has it (state and step names).
export function tOr(key, fallback) {
  return DICTIONARIES[current][key] ?? DICTIONARIES.en[key] ?? fallback;
}

/// Fills every `[data-i18n]` element's text, `[data-i18n-aria]` its aria-label and
/// `[data-i18n-placeholder]` its placeholder.
export function translateStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("app.title");
}

const numberFormats = new Map();
function numberFormat() {
  const l = locale();
  if (!numberFormats.has(l)) numberFormats.set(l, new Intl.NumberFormat(l));
  return numberFormats.get(l);
}

/// A count in the operator's locale.
export function count(n) {
  if (n === null || n === undefined) return "—";
  return numberFormat().format(n);
}

/// Won, whole: 192,190,460원 / 192,190,460 won. Amounts are integers; a negative one
/// keeps its sign.
export function won(n) {
  if (n === null || n === undefined) return "—";
  const text = numberFormat().format(n);
  return current === "ko" ? `${text}원` : `${text} won`;
}

const timeFormats = new Map();
function timeFormat(withSeconds) {
  const key = `${locale()}|${withSeconds}`;
  if (!timeFormats.has(key)) {
    timeFormats.set(
      key,
      new Intl.DateTimeFormat(locale(), {
        timeZone: "Asia/Seoul",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: withSeconds ? "2-digit" : undefined,
        hourCycle: "h23",
      }),
    );
  }
  return timeFormats.get(key);
}

/// An instant in Korea time with the zone named, year first in every language so that no
/// operator reads 12/07 as July: "2026-12-15 09:00:12 KST".
export function time(value, { seconds = true } = {}) {
  if (!value) return "—";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const part = {};
  for (const p of timeFormat(seconds).formatToParts(d)) part[p.type] = p.value;
  const clock = seconds ? `${part.hour}:${part.minute}:${part.second}` : `${part.hour}:${part.minute}`;
  return `${part.year}-${part.month}-${part.day} ${clock} KST`;
}

/// A span of seconds, roughly: "3 min 20 s" / "3분 20초".
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const parts = current === "ko"
    ? [h && `${h}시간`, m && `${m}분`, (r || (!h && !m)) && `${r}초`]
    : [h && `${h} h`, m && `${m} min`, (r || (!h && !m)) && `${r} s`];
  return parts.filter(Boolean).join(" ");
}
